#include "common/registry.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/fd.hpp"
#include "common/sys.hpp"

namespace common::registry {
namespace {

using nlohmann::json;

bool valid_id(const std::string& id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-';
  });
}

json to_j(const JailRecord& r) {
  json j{{"id", r.id},
         {"supervisor_pid", r.supervisor_pid},
         {"init_pid", r.init_pid},
         {"host_uid", r.host_uid},
         {"host_gid", r.host_gid},
         {"uid", r.uid},
         {"gid", r.gid},
         {"rootless", r.rootless},
         {"audit_id", r.audit_id},
         {"namespaces", r.namespaces},
         {"started_unix_ms", r.started_unix_ms},
         {"command", r.command},
         {"hostname", r.hostname},
         {"net", r.net},
         {"policy_digest", r.policy_digest},
         {"cgroup_version", r.cgroup_version},
         {"cgroups", r.cgroups}};
  if (r.net == "bridge")
    j["network"] = {{"bridge", r.bridge},
                    {"veth", r.veth},
                    {"ipv4", r.ipv4},
                    {"ipv6", r.ipv6},
                    {"mark", r.mark}};
  return j;
}

JailRecord from_j(const json& j) {
  JailRecord r;
  r.id = j.at("id").get<std::string>();
  r.supervisor_pid = j.at("supervisor_pid").get<pid_t>();
  r.init_pid = j.at("init_pid").get<pid_t>();
  r.host_uid = j.at("host_uid").get<uid_t>();
  r.host_gid = j.at("host_gid").get<gid_t>();
  r.uid = j.value("uid", 0u);
  r.gid = j.value("gid", 0u);
  r.rootless = j.value("rootless", false);
  r.audit_id = j.value("audit_id", kNoAuditId);
  r.namespaces = j.value("namespaces", std::map<std::string, std::uint64_t>{});
  r.started_unix_ms = j.value("started_unix_ms", std::int64_t{0});
  r.command = j.value("command", std::vector<std::string>{});
  r.hostname = j.value("hostname", "");
  r.net = j.value("net", "");
  if (auto n = j.find("network"); n != j.end() && n->is_object()) {
    r.bridge = n->value("bridge", "");
    r.veth = n->value("veth", "");
    r.ipv4 = n->value("ipv4", "");
    r.ipv6 = n->value("ipv6", "");
    r.mark = n->value("mark", 0u);
  }
  r.policy_digest = j.value("policy_digest", "");
  r.cgroup_version = j.value("cgroup_version", "");
  r.cgroups = j.value("cgroups", std::vector<std::string>{});
  return r;
}

}  // namespace

std::string default_dir() {
  if (geteuid() == 0) return "/run/stockade/jails";
  const char* xdg = std::getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/stockade/jails";
  return "";
}

std::string alerts_dir(const std::string& registry_dir) {
  auto slash = registry_dir.rfind('/');
  if (slash == std::string::npos) return "alerts";
  return registry_dir.substr(0, slash) + "/alerts";
}

nlohmann::json read_alert_tally(const std::string& registry_dir, const std::string& id) {
  if (!valid_id(id)) return nullptr;
  std::string path = alerts_dir(registry_dir) + "/" + id + ".json";
  UniqueFd fd{sys::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)};
  if (!fd) return nullptr;
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = sys::read(fd.get(), buf, sizeof buf)) > 0 && text.size() < (1u << 20))
    text.append(buf, static_cast<size_t>(n));
  auto j = json::parse(text, nullptr, false);
  return j.is_object() ? j : nullptr;
}

Result<void> ensure_dir(const std::string& dir) {
  auto slash = dir.rfind('/');
  std::string parent = dir.substr(0, slash);
  for (const std::string& d : {parent, dir}) {
    struct stat st;
    if (::lstat(d.c_str(), &st) != 0) {
      if (errno != ENOENT) return fail(errno, "stat '{}'", d);
      if (::mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) return fail(errno, "create '{}'", d);
      if (::lstat(d.c_str(), &st) != 0) return fail(errno, "stat '{}'", d);
    }
    // Refuse a directory someone else planted: the registry decides what gc removes.
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0)
      return fail(EPERM, "'{}' is not a private directory owned by uid {}", d, geteuid());
  }
  return {};
}

Result<void> write(const std::string& dir, const JailRecord& rec) {
  std::string text = to_j(rec).dump() + "\n";
  std::string tmp = dir + "/." + rec.id + ".tmp";
  std::string final_path = dir + "/" + rec.id + ".json";
  UniqueFd fd{sys::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600)};
  if (!fd) return fail(errno, "create '{}'", tmp);
  if (!sys::write_all(fd.get(), text.data(), text.size())) {
    int err = errno;
    (void)::unlink(tmp.c_str());  // best effort: the write already failed
    return fail(err, "write '{}'", tmp);
  }
  fd.reset();
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    (void)::unlink(tmp.c_str());  // best effort: the rename already failed
    return fail(err, "rename '{}'", final_path);
  }
  return {};
}

Result<void> remove(const std::string& dir, const std::string& id) {
  std::string path = dir + "/" + id + ".json";
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail(errno, "remove '{}'", path);
  return {};
}

std::string to_json(const JailRecord& rec, int indent) { return to_j(rec).dump(indent); }

Result<JailRecord> read(const std::string& dir, const std::string& id) {
  if (!valid_id(id)) return fail(EINVAL, "'{}' is not a jail id", id);
  std::string path = dir + "/" + id + ".json";
  UniqueFd fd{sys::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)};
  if (!fd) return fail(errno, "jail '{}'", id);
  return read_file(fd.get(), path);
}

Result<JailRecord> read_file(int fd, const std::string& what) {
  // An entry is a few hundred bytes; anything this large is not one.
  constexpr size_t kMaxEntry = 1 << 20;
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = sys::read(fd, buf, sizeof buf)) > 0) {
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxEntry) return fail(EFBIG, "'{}' is not a registry entry", what);
  }
  if (n < 0) return fail(errno, "read '{}'", what);
  try {
    return from_j(json::parse(text));
  } catch (const std::exception& e) {
    return fail(0, "'{}' is not a valid registry entry: {}", what, e.what());
  }
}

std::vector<JailRecord> list(const std::string& dir) {
  std::vector<JailRecord> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name.size() <= 5 || !name.ends_with(".json") || name[0] == '.') continue;
    if (auto rec = read(dir, name.substr(0, name.size() - 5))) out.push_back(std::move(*rec));
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const JailRecord& a, const JailRecord& b) {
    return a.started_unix_ms < b.started_unix_ms;
  });
  return out;
}

bool supervisor_alive(const JailRecord& rec) {
  return rec.supervisor_pid > 0 && (::kill(rec.supervisor_pid, 0) == 0 || errno == EPERM);
}

Entry::~Entry() {
  // Nothing to report to from a destructor; gc removes what is left after a crash.
  if (!id_.empty()) (void)remove(dir_, id_);
}

}  // namespace common::registry
