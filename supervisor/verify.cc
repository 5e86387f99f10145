// `baton verify` (not built yet).
#include "verify.h"

#include <cstdio>

#include "exit_codes.h"

namespace baton {

int command_verify(const std::string&, const VerifyFlags&) {
  std::fputs("baton: verify is not built yet\n", stderr);
  return kExitFailed;
}

}  // namespace baton
