// The recipes of docs/servers.md, each run under baton and reloaded under
// load.
#include <doctest/doctest.h>
