// End-to-end tests: the control socket under hostile clients and untrusted directories.
#include <doctest/doctest.h>

#include "harness.h"
