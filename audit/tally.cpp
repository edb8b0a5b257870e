#include "audit/tally.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common/fd.hpp"
#include "common/log.hpp"
#include "common/registry.hpp"
#include "common/sys.hpp"

namespace audit {

namespace registry = common::registry;

AlertTally::AlertTally(std::string registry_dir)
    : registry_dir_(std::move(registry_dir)), dir_(registry::alerts_dir(registry_dir_)) {}

void AlertTally::count(const Alert& a) {
  auto it = a.fields.find("stockade.jail.id");
  if (it == a.fields.end() || !it->is_string()) return;
  std::string id = it->get<std::string>();
  if (id.empty() || id == "unknown") return;
  auto [t, fresh] = tallies_.try_emplace(id);
  if (fresh) {
    // A watcher that restarted goes on from what the last one published.
    t->second = registry::read_alert_tally(registry_dir_, id);
    if (!t->second.is_object()) t->second = nlohmann::json::object();
  }
  auto& j = t->second;
  // Whatever a published file held, only well-formed fields are carried on.
  j["jail"] = id;
  if (!j["count"].is_number_unsigned()) j["count"] = 0;
  if (!j["by_rule"].is_object()) j["by_rule"] = nlohmann::json::object();
  auto& n = j["by_rule"][a.rule];
  if (!n.is_number_unsigned()) n = 0;
  n = n.get<std::uint64_t>() + 1;
  j["count"] = j["count"].get<std::uint64_t>() + 1;
  j["last"] = {
      {"time_ns", a.time_ns}, {"rule", a.rule}, {"priority", a.priority}, {"output", a.text}};
  dirty_.insert(id);
}

void AlertTally::publish() {
  if (dirty_.empty() && tallies_.empty()) return;
  if (!dirty_.empty()) {
    if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
      common::log::warn("alert tallies: mkdir '{}': {}", dir_, std::strerror(errno));
      dirty_.clear();
      return;
    }
  }
  for (auto it = tallies_.begin(); it != tallies_.end();) {
    const std::string& id = it->first;
    std::string path = dir_ + "/" + id + ".json";
    struct stat st;
    if (::stat((registry_dir_ + "/" + id + ".json").c_str(), &st) != 0) {
      (void)::unlink(path.c_str());  // the jail has ended
      dirty_.erase(id);
      it = tallies_.erase(it);
      continue;
    }
    if (dirty_.erase(id) > 0) {
      std::string tmp = dir_ + "/." + id + ".tmp";
      std::string text = it->second.dump() + "\n";
      common::UniqueFd fd{sys::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
      if (!fd || !sys::write_all(fd.get(), text.data(), text.size()) ||
          ::rename(tmp.c_str(), path.c_str()) != 0) {
        common::log::warn("alert tally '{}': {}", path, std::strerror(errno));
        (void)::unlink(tmp.c_str());
      }
    }
    ++it;
  }
}

}  // namespace audit
