// End-to-end tests: faults under load (crashes after READY, escaped processes, PID 1, slow log readers).
#include <doctest/doctest.h>

#include "harness.h"
