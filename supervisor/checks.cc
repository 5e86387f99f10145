// Readiness checks: what makes a starting instance ready. Each configured
// check must pass once: READY=1 (notify) and the probes, tried one at a time
// in the order http, tcp, exec, each attempt bounded by ready.timeout and
// started ready.interval after the one before. ready_timeout (the starting
// state's timer) bounds the whole wait.
//
// http and tcp probes connect to the generation's own listener on the
// probed socket, from baton's probe source (127.0.0.2), which the kernel's
// steering program sends to that listener alone (see steering.h): they
// reach the candidate, never the generation that serves. A tcp probe passes
// once its connection was accepted: the connect itself always succeeds on
// a listener baton holds, so it also needs the listener's accept queue to
// be empty afterwards.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "child_environment.h"
#include "listen_socket.h"
#include "supervisor.h"

namespace baton {

std::string probe_label(const std::string& probe, const ReadyChecks& ready) {
  if (probe == "http") return fmt::format("http {}", ready.http->path);
  if (probe == "exec") return fmt::format("exec {}", ready.exec.front());
  return probe;
}

std::optional<size_t> probed_socket_index(const Config& config) {
  const SocketSpec* spec = probed_socket(config);
  if (!spec) return std::nullopt;
  return static_cast<size_t>(spec - config.sockets.data());
}

const SharedSocket* Supervisor::probed_socket(const Generation& gen) const {
  std::optional<size_t> i = probed_socket_index(*gen.config);
  return i && *i < gen.sockets.size() ? &gen.sockets[*i] : nullptr;
}

CommandSpec Supervisor::command_spec(const Generation& gen, const CheckCommand& command) const {
  const Config& config = *gen.config;
  CommandSpec spec;
  spec.argv = command.command;
  spec.env = base_environment_;
  for (const auto& [key, value] : config.environment) spec.env.push_back(key + "=" + value);
  spec.env.push_back(fmt::format("BATON_GENERATION={}", gen.number));
  spec.env.push_back(fmt::format("BATON_SERVICE={}", config.name));
  if (const SharedSocket* probed = probed_socket(gen)) {
    if (auto target = (*probed)->probe_target()) {
      std::string addr = target->target.to_string();
      bool unix = target->target.kind == SocketKind::kUnix;
      spec.env.push_back("BATON_CANDIDATE_ADDR=" + addr);
      spec.env.push_back(unix ? "BATON_CANDIDATE_URL=unix:" + addr
                              : "BATON_CANDIDATE_URL=http://" + addr);
      if (!target->source.empty()) spec.env.push_back("BATON_PROBE_SOURCE=" + target->source);
    }
  }
  spec.working_directory = config.working_directory;
  spec.timeout = command.timeout;
  return spec;
}

void Supervisor::start_checks(Instance& inst) {
  const ReadyChecks& ready = inst.gen->config->ready;
  inst.awaiting_notify = ready.notify;
  inst.probes.clear();
  if (ready.http) inst.probes.push_back("http");
  if (ready.tcp) inst.probes.push_back("tcp");
  if (!ready.exec.empty()) inst.probes.push_back("exec");
  if (inst.probes.empty()) return;
  Instance* raw = &inst;
  inst.probe_timer = os_.timer([this, raw] {
    if (raw->state == InstanceState::kStarting) attempt_probe(*raw);
  });
  attempt_probe(inst);
}

void Supervisor::attempt_probe(Instance& inst) {
  const Config& config = *inst.gen->config;
  const ReadyChecks& ready = config.ready;
  const std::string& probe = inst.probes.front();
  inst.probe_attempts++;
  inst.probe_started_at = os_.now();
  Instance* raw = &inst;
  // The finished attempt may be destroyed from its own callback (by the
  // next attempt, or when the instance leaves starting).
  auto done = [this, raw](bool passed, std::string summary) {
    dispatch(*raw, InstanceEvent::kProbed, EventArgs::probed(passed, std::move(summary)));
  };
  std::unique_ptr<Pending> attempt;
  if (probe == "exec") {
    CheckCommand command{"", ready.exec, ready.timeout};
    CommandSpec spec = command_spec(*inst.gen, command);
    // Which instance it checks: its generation's instances share listeners.
    spec.env.push_back(fmt::format("BATON_INSTANCE={}", inst.slot));
    spec.env.push_back(fmt::format("BATON_INSTANCE_PID={}", inst.pid()));
    attempt = os_.run(
        std::move(spec),
        [raw](const std::string& line) {
          spdlog::info("[gen {} ready.exec] {}", raw->generation(), line);
        },
        [done, label = probe_label(probe, ready)](CommandResult r) {
          done(r.passed, fmt::format("{}: {} in {}ms", label, r.outcome, r.took.count()));
        });
  } else {
    const SharedSocket* socket = probed_socket(*inst.gen);
    ProbeSpec spec;
    spec.kind = probe == "http" ? ProbeSpec::Kind::kHttp : ProbeSpec::Kind::kTcp;
    if (socket) spec.listener = *socket;
    if (ready.http) spec.http = *ready.http;
    spec.timeout = ready.timeout;
    bool tcp = probe == "tcp";
    SharedSocket listener = spec.listener;
    attempt = os_.probe(spec, [this, done, tcp, listener](ProbeResult r) {
      if (r.passed && tcp) {
        // The kernel completes the handshake on baton's listener whether or
        // not the app accepts: it passes once nothing is left queued.
        int queued = listener ? os_.queued({listener}).value_or(0) : 0;
        if (queued > 0) {
          r.passed = false;
          r.summary += fmt::format(", but the app has not accepted it ({} queued)", queued);
        }
      }
      done(r.passed, std::move(r.summary));
    });
  }
  inst.probe_attempt = std::move(attempt);
}

void Supervisor::probe_done(Instance& inst, const EventArgs& args) {
  const Config& config = *inst.gen->config;
  std::string result = fmt::format("{} (attempt {})", args.reason, inst.probe_attempts);
  std::string probe = inst.probes.front();
  if (inst.probe_results.size() < 3) inst.probe_results.resize(3);
  size_t slot = probe == "http" ? 0 : probe == "tcp" ? 1 : 2;
  inst.probe_results[slot] = result;
  if (is_candidate(inst)) {
    broadcast(fmt::format("generation {}: {}", inst.generation(), result));
  } else if (args.passed || inst.probe_attempts == 1) {
    spdlog::info("generation {}: pid {} {}", inst.generation(), inst.pid(), result);
  }
  if (!args.passed) {
    counters_.probe_failures[probe]++;
    auto next = config.ready.interval - (os_.now() - inst.probe_started_at);
    inst.probe_timer->arm(std::max(Millis{0}, std::chrono::ceil<Millis>(next)));
    return;
  }
  inst.probes.erase(inst.probes.begin());
  inst.probe_attempts = 0;
  if (!inst.probes.empty()) return attempt_probe(inst);
  if (inst.awaiting_notify) {
    spdlog::info("generation {}: pid {} passed its probes; waiting for READY=1", inst.generation(),
                 inst.pid());
    return;
  }
  become_ready(inst, {});
}

void Supervisor::notified(Instance& inst, const EventArgs& args) {
  if (!inst.gen->config->ready.notify) {
    spdlog::debug("generation {}: pid {} sent READY=1; its readiness comes from its probes",
                  inst.generation(), inst.pid());
    return;
  }
  inst.awaiting_notify = false;
  if (inst.checks_passed()) return become_ready(inst, args);
  spdlog::info("generation {}: pid {} sent READY=1; waiting for its probes", inst.generation(),
               inst.pid());
}

void Supervisor::stop_probes(Instance& inst) {
  inst.probe_attempt.reset();
  if (inst.probe_timer) inst.probe_timer->cancel();
}

std::vector<std::string> waiting_for(const Instance& inst) {
  std::vector<std::string> waiting;
  if (inst.awaiting_notify) waiting.push_back("READY=1");
  for (const std::string& p : inst.probes)
    waiting.push_back(probe_label(p, inst.gen->config->ready));
  return waiting;
}

std::vector<std::string> last_probe_results(const Instance& inst) {
  std::vector<std::string> last;
  for (const std::string& r : inst.probe_results) {
    if (!r.empty()) last.push_back(r);
  }
  return last;
}

std::string Supervisor::checks_timeout_reason(const Instance& inst) const {
  const Config& config = *inst.gen->config;
  std::string reason;
  if (!config.ready.any_probe()) {
    reason = fmt::format("sent no READY=1 within ready_timeout ({})",
                         format_duration(config.ready_timeout));
  } else {
    reason =
        fmt::format("did not pass its readiness checks within ready_timeout ({}): waiting for {}",
                    format_duration(config.ready_timeout), fmt::join(waiting_for(inst), ", "));
  }
  std::vector<std::string> last = last_probe_results(inst);
  if (!last.empty()) reason += fmt::format("; last: {}", fmt::join(last, "; "));
  if (inst.awaiting_notify && !inst.foreign_ready.empty()) {
    reason += fmt::format(
        "; a READY=1 came from {}, which is not the main pid (pid {}): only the main pid's "
        "count, or the one it names with MAINPID=",
        inst.foreign_ready, inst.pid());
  }
  return reason;
}

}  // namespace baton
