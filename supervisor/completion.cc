// The bash completion script (not written yet).
#include "completion.h"

namespace baton {

std::string completion_script(std::string_view) {
  return "";
}

}  // namespace baton
