// Building the app's environment.
#include "environment.h"

#include <algorithm>

#include "shim/protocol.h"

namespace baton {
namespace {

constexpr std::string_view kNotInherited[] = {
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "MAINPID",
    "MANAGERPID",
    "SYSTEMD_EXEC_PID",
    "MEMORY_PRESSURE_WATCH",
    "MEMORY_PRESSURE_WRITE",
    BATON_ENV_LD_PRELOAD,
    BATON_ENV_SHIM_DRAIN_SIGNAL,
    // What baton tells the app about itself (a baton run under another).
    "BATON_SERVICE",
    "BATON_PID",
    "BATON_GENERATION",
    "BATON_INSTANCE",
};

std::string_view key_of(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

}  // namespace

Environment::Environment(std::vector<std::string> entries) {
  for (const std::string& e : entries) {
    size_t eq = e.find('=');
    set(key_of(e),
        eq == std::string::npos ? std::string_view() : std::string_view(e).substr(eq + 1));
  }
}

void Environment::set(std::string_view key, std::string_view value) {
  auto [it, fresh] = index_.try_emplace(std::string(key), entries_.size());
  if (fresh) {
    entries_.push_back(Entry{std::string(key), std::string(value)});
  } else {
    entries_[it->second].value = value;
  }
}

void Environment::erase(std::string_view key) {
  auto it = index_.find(std::string(key));
  if (it == index_.end()) return;
  entries_[it->second].erased = true;
  index_.erase(it);
}

const std::string* Environment::get(std::string_view key) const {
  auto it = index_.find(std::string(key));
  return it == index_.end() ? nullptr : &entries_[it->second].value;
}

std::vector<std::string> Environment::entries() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const Entry& e : entries_) {
    if (!e.erased) out.push_back(e.key + "=" + e.value);
  }
  return out;
}

std::vector<std::string> inherited_environment(char** environ_entries) {
  std::vector<std::string> out;
  for (char** e = environ_entries; e && *e; ++e) {
    std::string_view key = key_of(*e);
    if (std::find(std::begin(kNotInherited), std::end(kNotInherited), key) ==
        std::end(kNotInherited)) {
      out.emplace_back(*e);
    }
  }
  return out;
}

}  // namespace baton
