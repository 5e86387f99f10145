#include "steering.h"

namespace baton {

Status switch_to(const std::vector<SharedSocket>&) {
  return {};
}

int queued_connections(const std::vector<SharedSocket>&) {
  return 0;
}

}  // namespace baton
