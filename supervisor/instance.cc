#include "instance.h"

#include "supervisor.h"

namespace baton {

std::string_view to_string(InstanceState state) {
  switch (state) {
    case InstanceState::kStarting:
      return "starting";
    case InstanceState::kFailing:
      return "failing";
    case InstanceState::kReady:
      return "ready";
    case InstanceState::kDraining:
      return "draining";
    case InstanceState::kDrainKilled:
      return "drain-killed";
    case InstanceState::kLingering:
      return "lingering";
    case InstanceState::kExited:
      return "exited";
  }
  return "?";
}

std::string_view public_state(InstanceState state) {
  switch (state) {
    case InstanceState::kStarting:
    case InstanceState::kFailing:
      return "starting";
    case InstanceState::kReady:
      return "ready";
    case InstanceState::kDraining:
    case InstanceState::kDrainKilled:
    case InstanceState::kLingering:
      return "draining";
    case InstanceState::kExited:
      return "exited";
  }
  return "?";
}

int Instance::generation() const {
  return gen->number;
}

}  // namespace baton
