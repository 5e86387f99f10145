#include "reload_reply.h"

#include <nlohmann/json.hpp>

namespace baton {

void ReloadReply::queued(const std::string& message) {
  reply_->event({{"event", "queued"}, {"message", message}});
}

void ReloadReply::progress(const std::string& message) {
  reply_->event({{"event", "progress"}, {"message", message}});
}

void ReloadReply::draining(const ReloadRecord& record) {
  reply_->event({{"event", "draining"}, {"reload", reload_record_json(record, Clock::now())}});
}

void ReloadReply::finished(const ReloadOutcome& outcome) {
  reply_->finish(reload_outcome_json(outcome, Clock::now()));
}

}  // namespace baton
