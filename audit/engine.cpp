// Assembly (libauparse for multi-record events, a small parser for standalone records) and
// attribution through the registry.
#include <auparse.h>
#include <libaudit.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "audit/audit.hpp"
#include "audit/detail/event.hpp"
#include "common/registry.hpp"

namespace audit {
namespace {

using detail::Event;
using detail::Jail;
using detail::Record;
using Clock = std::chrono::steady_clock;

// Records the kernel sends on their own, without an end-of-event record: handled at once
// instead of waiting for libauparse to age them out (an alert must not wait seconds).
bool standalone(int type) {
  return type == AUDIT_SECCOMP || type == AUDIT_ANOM_ABEND || type == AUDIT_NETFILTER_PKT;
}

// A recently ended jail is still attributed for this long after its registry entry went.
constexpr auto kRemember = std::chrono::minutes(10);
constexpr auto kReloadEvery = std::chrono::milliseconds(50);

struct Known {
  Jail jail;
  Clock::time_point last_seen;
};

void strip_quotes(std::string& v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
}

}  // namespace

namespace detail {

const std::string* Record::get(std::string_view name) const {
  for (const auto& [k, v] : fields)
    if (k == name) return &v;
  return nullptr;
}

const Record* Event::find(int type) const {
  for (const auto& r : records)
    if (r.type == type) return &r;
  return nullptr;
}

bool parse_body(std::string_view body, std::int64_t* time_ms, std::uint64_t* serial, Record* rec) {
  // audit(1795369751.428:26): fields...
  if (!body.starts_with("audit(")) return false;
  auto close = body.find("):");
  if (close == std::string_view::npos) return false;
  std::string stamp(body.substr(6, close - 6));
  unsigned long long sec = 0, serial_v = 0;
  unsigned ms = 0;
  char tail = 0;
  if (std::sscanf(stamp.c_str(), "%llu.%u:%llu%c", &sec, &ms, &serial_v, &tail) != 3) return false;
  if (sec > 1ULL << 40 || ms > 999) return false;
  *time_ms = static_cast<std::int64_t>(sec) * 1000 + ms;
  *serial = serial_v;
  std::string_view rest = body.substr(close + 2);
  // Enriched logs append interpreted fields after a 0x1d separator: the raw ones are enough.
  if (auto gs = rest.find('\x1d'); gs != std::string_view::npos) rest = rest.substr(0, gs);
  size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    size_t eq = rest.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string name(rest.substr(i, eq - i));
    size_t v = eq + 1, end;
    if (v < rest.size() && rest[v] == '"') {
      end = rest.find('"', v + 1);
      end = end == std::string_view::npos ? rest.size() : end + 1;
    } else if (v < rest.size() && rest[v] == '\'') {  // msg='...' of userspace records
      end = rest.find('\'', v + 1);
      end = end == std::string_view::npos ? rest.size() : end + 1;
    } else {
      end = rest.find(' ', v);
      if (end == std::string_view::npos) end = rest.size();
    }
    std::string value(rest.substr(v, end - v));
    strip_quotes(value);
    if (!name.empty() && name.find(' ') == std::string::npos)
      rec->fields.emplace_back(std::move(name), std::move(value));
    i = end;
  }
  return true;
}

}  // namespace detail

struct Engine::Impl {
  EngineOptions opt;
  Sink sink;
  EngineStats stats;
  auparse_state_t* au = nullptr;
  std::unordered_map<std::uint32_t, Known> jails;
  Clock::time_point last_reload{};
  std::string line;  // reused for feeding

  // libauparse hands over a LOGIN record on its own, before the SYSCALL record of the write
  // that caused it: kept here until its syscall arrives, so the two make one alert.
  std::optional<Event> pending_login;

  void handle(const Event& in) {
    Event merged;
    const Event* evp = &in;
    if (pending_login) {
      if (pending_login->serial == in.serial && pending_login->time_ms == in.time_ms) {
        merged = std::move(*pending_login);
        merged.records.insert(merged.records.end(), in.records.begin(), in.records.end());
        evp = &merged;
        pending_login.reset();
      } else {
        Event login = std::move(*pending_login);
        pending_login.reset();
        handle_one(login);
      }
    } else if (in.records.size() == 1 && in.records[0].type == AUDIT_LOGIN) {
      pending_login = in;
      return;
    }
    handle_one(*evp);
  }

  void release_pending() {
    if (!pending_login) return;
    Event login = std::move(*pending_login);
    pending_login.reset();
    handle_one(login);
  }

  void handle_one(const Event& ev) {
    ++stats.events;
    const std::string* auid = nullptr;
    for (const auto& r : ev.records) {
      if (r.type == AUDIT_LOGIN) auid = r.get("old-auid");
      if (auid == nullptr) auid = r.get("auid");
      if (auid != nullptr) break;
    }
    // nftables' `log level audit` record of a packet a jail's egress policy dropped names no
    // process: the packet's mark is the jail's host uid (netjail stamps it), its audit id.
    int base = 10;
    if (auid == nullptr)
      if (const Record* pkt = ev.find(AUDIT_NETFILTER_PKT)) {
        auid = pkt->get("mark");
        base = 16;
      }
    if (auid == nullptr) return;
    char* end = nullptr;
    unsigned long id = std::strtoul(auid->c_str(), &end, base);
    if (end == auid->c_str() || id > 0xffffffffUL || !opt.range.contains(id)) return;
    const Jail& jail = attribute(static_cast<std::uint32_t>(id));
    for (auto& a : detail::detect(ev, jail, {opt.live, opt.key})) raise(a);
  }

  void raise(const Alert& a) {
    ++stats.alerts;
    if (sink) sink(a);
  }

  void remember(const common::registry::JailRecord& rec, Clock::time_point seen) {
    if (rec.audit_id == common::registry::kNoAuditId) return;
    Jail j;
    j.known = true;
    j.id = rec.id;
    j.policy = rec.policy_digest.empty() ? "default" : rec.policy_digest;
    j.host_uid = rec.host_uid;
    j.uid = rec.uid;
    j.init_pid = rec.init_pid;
    j.namespaces = rec.namespaces;
    for (auto& w : rec.command) j.command += (j.command.empty() ? "" : " ") + w;
    jails[rec.audit_id] = Known{std::move(j), seen};
  }

  void reload() {
    last_reload = Clock::now();
    if (opt.registry_dir.empty()) return;
    for (auto& rec : common::registry::list(opt.registry_dir)) remember(rec, last_reload);
    std::erase_if(jails,
                  [&](const auto& kv) { return last_reload - kv.second.last_seen > kRemember; });
  }

  Jail unknown_jail;

  // Valid until the next call.
  const Jail& attribute(std::uint32_t id) {
    auto it = jails.find(id);
    if (it == jails.end() && Clock::now() - last_reload > kReloadEvery) {
      reload();
      it = jails.find(id);
    }
    if (it != jails.end()) return it->second.jail;
    unknown_jail = Jail{};
    unknown_jail.host_uid = id;
    unknown_jail.id = "unknown";
    unknown_jail.policy = "unknown";
    return unknown_jail;
  }

  static void on_event(auparse_state_t* au, auparse_cb_event_t type, void* data) {
    if (type != AUPARSE_CB_EVENT_READY) return;
    auto* self = static_cast<Impl*>(data);
    Event ev;
    if (const au_event_t* ts = auparse_get_timestamp(au)) {
      ev.time_ms = static_cast<std::int64_t>(ts->sec) * 1000 + ts->milli;
      ev.serial = ts->serial;
    }
    if (auparse_first_record(au) <= 0) return;
    do {
      Record r;
      r.type = auparse_get_type(au);
      if (auparse_first_field(au) > 0) {
        do {
          const char* n = auparse_get_field_name(au);
          const char* v = auparse_get_field_str(au);
          if (n == nullptr || v == nullptr) continue;
          std::string value = v;
          strip_quotes(value);
          r.fields.emplace_back(n, std::move(value));
        } while (auparse_next_field(au) > 0);
      }
      ev.records.push_back(std::move(r));
    } while (auparse_next_record(au) > 0);
    self->handle(ev);
  }

  void standalone_record(int type, std::string_view body) {
    Event ev;
    Record r;
    r.type = type;
    if (!detail::parse_body(body, &ev.time_ms, &ev.serial, &r)) {
      ++stats.malformed;
      return;
    }
    ev.records.push_back(std::move(r));
    handle(ev);
  }

  void feed_auparse(std::string_view text) {
    if (auparse_feed(au, text.data(), text.size()) != 0) ++stats.malformed;
  }
};

Engine::Engine(EngineOptions options, Sink sink) : impl_(std::make_unique<Impl>()) {
  impl_->opt = std::move(options);
  impl_->sink = std::move(sink);
  impl_->au = auparse_init(AUSOURCE_FEED, nullptr);
  if (impl_->au != nullptr) auparse_add_callback(impl_->au, &Impl::on_event, impl_.get(), nullptr);
}

Engine::~Engine() {
  if (impl_->au != nullptr) {
    impl_->sink = nullptr;  // whoever received alerts may be gone: call flush() before this
    (void)auparse_flush_feed(impl_->au);
    auparse_destroy(impl_->au);
  }
}

void Engine::feed_record(int type, std::string_view body) {
  ++impl_->stats.records;
  if (standalone(type)) return impl_->standalone_record(type, body);
  if (impl_->au == nullptr) return;
  // libauparse reads auditd's text format: put back the "type=NAME msg=" the kernel leaves out.
  const char* name = audit_msg_type_to_name(type);
  std::string& l = impl_->line;
  l.clear();
  if (name != nullptr)
    l.append("type=").append(name);
  else
    l.append(fmt::format("type=UNKNOWN[{}]", type));
  l.append(" msg=").append(body);
  // A record is one line: an embedded newline would split it into two bogus ones.
  for (char& c : l)
    if (c == '\n' || c == '\0') c = ' ';
  l.push_back('\n');
  impl_->feed_auparse(l);
}

void Engine::feed_line(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.starts_with("node=")) {
    auto sp = line.find(' ');
    line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
  }
  if (!line.starts_with("type=")) {
    if (!line.empty()) ++impl_->stats.malformed;
    return;
  }
  auto sp = line.find(' ');
  std::string type_name(line.substr(5, sp == std::string_view::npos ? line.size() - 5 : sp - 5));
  int type = 0;
  if (type_name.starts_with("UNKNOWN[")) {
    type = std::atoi(type_name.c_str() + 8);
  } else {
    type = audit_name_to_msg_type(type_name.c_str());
  }
  auto msg = line.find("msg=");
  if (type <= 0 || msg == std::string_view::npos) {
    ++impl_->stats.malformed;
    return;
  }
  feed_record(type, line.substr(msg + 4));
}

void Engine::age() {
  if (impl_->au != nullptr) auparse_feed_age_events(impl_->au);
  impl_->release_pending();
}

void Engine::flush() {
  if (impl_->au != nullptr) (void)auparse_flush_feed(impl_->au);  // errors: nothing left to do
  impl_->release_pending();
}

void Engine::raise(const Alert& a) { impl_->raise(a); }

void Engine::refresh_jails() { impl_->reload(); }

void Engine::remember_jail(const common::registry::JailRecord& rec) {
  impl_->remember(rec, Clock::now());
}

const EngineStats& Engine::stats() const { return impl_->stats; }

}  // namespace audit
