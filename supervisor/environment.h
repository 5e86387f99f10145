// Environment: the app's environment as "KEY=VALUE" entries, built from
// baton's own less what describes baton's own process and unit, then the
// config's [environment] and the variables baton sets. Setting a key is
// O(1) (an index by key), so a config with 200,000 entries costs 200,000
// steps, not their square.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace baton {

class Environment {
 public:
  /// Starts from `entries` ("KEY=VALUE"; an entry without '=' is kept as is).
  explicit Environment(std::vector<std::string> entries = {});

  /// Sets `key`, replacing an earlier value in place.
  void set(std::string_view key, std::string_view value);
  void erase(std::string_view key);
  /// The value of `key`, or null.
  const std::string* get(std::string_view key) const;

  /// Every entry as "KEY=VALUE", in the order first set.
  std::vector<std::string> entries() const;

 private:
  struct Entry {
    std::string key, value;
    bool erased = false;
  };
  /// Entries in the order first set.
  std::vector<Entry> entries_;
  /// Key -> index in entries_, for live entries only.
  std::unordered_map<std::string, size_t> index_;
};

/// baton's own environment (`environ`, "KEY=VALUE" each) less the variables
/// that describe baton itself or its unit and would be false for the app:
/// the LISTEN_*, NOTIFY_SOCKET and WATCHDOG_* protocol variables (baton sets
/// the app's own), MAINPID, MANAGERPID and SYSTEMD_EXEC_PID (pids of baton
/// and its manager), JOURNAL_STREAM (the app's stdout/stderr are pipes to
/// baton, not the journal), MEMORY_PRESSURE_WATCH/_WRITE (set up for the
/// unit's main process), and BATON_LD_PRELOAD / BATON_SHIM_DRAIN_SIGNAL
/// (baton's own shim protocol: only shim mode sets them). INVOCATION_ID and
/// TRIGGER_* are kept: the app runs inside the same unit invocation.
std::vector<std::string> inherited_environment(char** environ_entries);

}  // namespace baton
