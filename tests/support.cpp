#include "tests/support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

namespace test {

using Clock = std::chrono::steady_clock;

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string stockade_bin() { return STOCKADE_BIN; }
std::string attack_bin() { return ATTACK_BIN; }

namespace {

int status_to_code(int st) {
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + WTERMSIG(st);
}

// In the forked child: stdio, passed fds, ids, environment, then exec. Never returns.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, const RunOptions& o, int out_fd,
                             int err_fd) {
  ::setpgid(0, 0);
  int in = o.stdin_fd >= 0 ? o.stdin_fd : ::open("/dev/null", O_RDONLY);
  ::dup2(in, 0);
  ::dup2(out_fd, 1);
  ::dup2(err_fd, 2);
  for (auto [from, to] : o.pass_fds) {
    if (from == to)
      ::fcntl(to, F_SETFD, 0);
    else
      ::dup2(from, to);  // the copy is not close-on-exec
  }
  if (o.uid || o.gid) {
    if (::setgroups(0, nullptr) != 0) ::_exit(121);
    if (o.gid && ::setresgid(*o.gid, *o.gid, *o.gid) != 0) ::_exit(122);
    if (o.uid && ::setresuid(*o.uid, *o.uid, *o.uid) != 0) ::_exit(123);
  }
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  if (o.env) {
    std::vector<char*> envp;
    for (auto& e : *o.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    ::execve(args[0], args.data(), envp.data());
  } else {
    ::execv(args[0], args.data());
  }
  ::_exit(127);
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  ssize_t n;
  while ((n = ::pread(fd, buf, sizeof buf, off)) > 0) {
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
  return out;
}

}  // namespace

RunResult run(const std::vector<std::string>& argv, double timeout_s) {
  RunOptions o;
  o.timeout_s = timeout_s;
  return run(argv, o);
}

RunResult run(const std::vector<std::string>& argv, const RunOptions& options) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) exec_child(argv, options, out[1], err[1]);
  ::close(out[1]);
  ::close(err[1]);
  RunResult r;
  auto deadline = Clock::now() + std::chrono::duration<double>(options.timeout_s);
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  bool killed = false;
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0 && !killed) {
      ::kill(pid, SIGKILL);  // by pid, never by name
      killed = true;
      left = 1000;
    }
    if (::poll(fds, 2, static_cast<int>(std::max<long long>(left, 1))) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
    // A grandchild holding the pipes open must not keep a killed child's run going forever.
    if (killed && Clock::now() > deadline + std::chrono::seconds(5)) break;
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);
  int st = 0;
  ::waitpid(pid, &st, 0);
  r.exit_code = killed ? -1 : status_to_code(st);
  return r;
}

RunResult stockade(const std::vector<std::string>& args, double timeout_s) {
  RunOptions o;
  o.timeout_s = timeout_s;
  return stockade(args, o);
}

RunResult stockade(const std::vector<std::string>& args, const RunOptions& options) {
  std::vector<std::string> argv{stockade_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, options);
}

std::vector<std::string> attack_argv(const std::vector<std::string>& options,
                                     const std::string& name,
                                     const std::vector<std::string>& args) {
  std::vector<std::string> argv{"run", "-q", "--ro-bind", attack_bin() + ":" + kAttackInJail};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.push_back(kAttackInJail);
  argv.push_back(name);
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

RunResult attack(const std::vector<std::string>& options, const std::string& name,
                 const std::vector<std::string>& args, double timeout_s) {
  RunOptions o;
  o.timeout_s = timeout_s;
  return attack(options, name, args, o);
}

RunResult attack(const std::vector<std::string>& options, const std::string& name,
                 const std::vector<std::string>& args, const RunOptions& run_options) {
  return stockade(attack_argv(options, name, args), run_options);
}

RunResult attack_on_host(const std::string& name, const std::vector<std::string>& args,
                         const RunOptions& run_options) {
  std::vector<std::string> argv{attack_bin(), name};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, run_options);
}

Process::Process(const std::vector<std::string>& argv, const RunOptions& options) {
  out_fd_ = ::memfd_create("test-out", MFD_CLOEXEC);
  err_fd_ = ::memfd_create("test-err", MFD_CLOEXEC);
  if (out_fd_ < 0 || err_fd_ < 0) return;
  pid_ = ::fork();
  if (pid_ == 0) exec_child(argv, options, out_fd_, err_fd_);
}

Process::~Process() {
  if (pid_ > 0 && !done_) {
    auto children = children_of(pid_);
    for (pid_t c : children) ::kill(c, SIGKILL);
    if (children.empty() || wait(2) < 0) {
      ::kill(pid_, SIGKILL);
      int st;
      ::waitpid(pid_, &st, 0);
    }
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

void Process::signal(int sig) const {
  if (pid_ > 0 && !done_) ::kill(pid_, sig);
}

int Process::wait(double timeout_s) {
  if (pid_ <= 0) return -1;
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (!done_) {
    int st;
    pid_t p = ::waitpid(pid_, &st, WNOHANG);
    if (p == pid_) {
      done_ = true;
      exit_code_ = status_to_code(st);
      break;
    }
    if (p < 0 && errno != EINTR) break;
    if (Clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return exit_code_;
}

std::string Process::out() const { return out_fd_ >= 0 ? read_all(out_fd_) : ""; }
std::string Process::err() const { return err_fd_ >= 0 ? read_all(err_fd_) : ""; }

int errno_under_programs(const std::vector<std::vector<sock_filter>>& programs,
                         const std::function<int()>& fn) {
  int pipefd[2];
  if (::pipe(pipefd) != 0) return -2;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    int err = 0;
    for (const auto& p : programs) {
      struct sock_fprog prog = {static_cast<unsigned short>(p.size()),
                                const_cast<sock_filter*>(p.data())};
      if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) err = -1;
    }
    if (err == 0) err = fn();
    (void)!::write(pipefd[1], &err, sizeof err);
    ::_exit(0);
  }
  ::close(pipefd[1]);
  int err = -2;
  (void)!::read(pipefd[0], &err, sizeof err);
  ::close(pipefd[0]);
  int st;
  ::waitpid(pid, &st, 0);
  return err;
}

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/stockade-test-XXXXXX";
  char* p = ::mkdtemp(tmpl);
  path_ = p ? p : "";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

static std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') out.push_back(e->d_name);
  ::closedir(d);
  return out;
}

// Entries of other live supervisors (another test run, a jail on the machine) are not ours to
// count: only stale ones and those of our own children are.
std::vector<std::string> registry_entries() {
  std::vector<std::string> out;
  for (auto& name : list_dir(kRegistryDir)) {
    // A jail's exec socket, ID.sock, belongs to whoever its ID.json names.
    std::string file = name.ends_with(".sock") ? name.substr(0, name.size() - 5) + ".json" : name;
    std::ifstream f(std::string(kRegistryDir) + "/" + file);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto at = text.find("\"supervisor_pid\":");
    pid_t sup = at == std::string::npos ? 0 : std::atoi(text.c_str() + at + 17);
    std::ifstream stat("/proc/" + std::to_string(sup) + "/stat");
    std::string st((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    auto close = st.rfind(')');
    pid_t ppid = 0;
    if (close != std::string::npos) std::sscanf(st.c_str() + close + 2, "%*c %d", &ppid);
    bool foreign = sup > 0 && alive(sup) && ppid != ::getpid();
    if (!foreign) out.push_back(name);
  }
  return out;
}
std::vector<std::string> lease_entries() { return list_dir(kLeaseDir); }

static std::optional<JailEntry> parse_entry(const std::string& text);

std::vector<std::string> registry_entries_left_behind() {
  std::vector<std::string> out;
  for (auto& name : registry_entries()) {
    std::string file = name.ends_with(".sock") ? name.substr(0, name.size() - 5) + ".json" : name;
    std::ifstream f(std::string(kRegistryDir) + "/" + file);
    std::stringstream ss;
    ss << f.rdbuf();
    auto e = parse_entry(ss.str());
    if (!e || e->supervisor_pid <= 0 || (::kill(e->supervisor_pid, 0) != 0 && errno == ESRCH))
      out.push_back(name);
  }
  return out;
}

std::vector<std::string> leases_left_behind() {
  std::vector<std::string> out;
  for (auto& name : lease_entries()) {
    int fd = ::open((std::string(kLeaseDir) + "/" + name).c_str(),
                    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_SH | LOCK_NB) == 0) out.push_back(name);  // nobody holds it
    ::close(fd);
  }
  return out;
}

int host_mounts_mentioning(const std::string& s) {
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  int n = 0;
  while (std::getline(f, line))
    if (line.find(s) != std::string::npos) ++n;
  return n;
}

static std::vector<pid_t> all_pids() {
  std::vector<pid_t> out;
  for (auto& name : list_dir("/proc"))
    if (name.find_first_not_of("0123456789") == std::string::npos)
      out.push_back(static_cast<pid_t>(std::stoi(name)));
  return out;
}

std::vector<pid_t> processes_with_uid(uid_t uid) {
  std::vector<pid_t> out;
  for (pid_t pid : all_pids()) {
    struct stat st;
    if (::stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0 && st.st_uid == uid)
      out.push_back(pid);
  }
  return out;
}

std::string registry_path(const std::string& id) {
  return std::string(kRegistryDir) + "/" + id + ".json";
}

std::string lease_path(uid_t host_uid) {
  return std::string(kLeaseDir) + "/" + std::to_string(host_uid);
}

static std::optional<JailEntry> parse_entry(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("id") || !j.contains("supervisor_pid")) return std::nullopt;
  JailEntry e;
  e.json = text;
  e.id = j.value("id", "");
  e.supervisor_pid = j.value("supervisor_pid", 0);
  e.init_pid = j.value("init_pid", 0);
  e.host_uid = j.value("host_uid", 0u);
  e.host_gid = j.value("host_gid", 0u);
  if (j.contains("namespaces") && j["namespaces"].is_object())
    e.pid_ns = j["namespaces"].value("pid", std::uint64_t{0});
  return e;
}

std::optional<JailEntry> find_jail(pid_t supervisor_pid) {
  for (auto& name : registry_entries()) {
    if (!name.ends_with(".json")) continue;
    std::ifstream f(std::string(kRegistryDir) + "/" + name);
    std::stringstream ss;
    ss << f.rdbuf();
    auto e = parse_entry(ss.str());
    if (e && e->supervisor_pid == supervisor_pid) return e;
  }
  return std::nullopt;
}

std::optional<JailEntry> wait_for_jail(const Process& supervisor, double timeout_s) {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    if (auto e = find_jail(supervisor.pid())) return e;
    // A supervisor that is gone (a zombie counts) will never write one.
    if (!alive(supervisor.pid()) || Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// "Name:\tvalue..." from /proc/PID/status, or "" if the process is gone.
static std::string status_field(pid_t pid, const std::string& name) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(name + ":", 0) == 0) return line.substr(name.size() + 1);
  return "";
}

bool alive(pid_t pid) {
  std::string state = status_field(pid, "State");
  return !state.empty() && state.find('Z') == std::string::npos &&
         state.find('X') == std::string::npos;
}

std::vector<pid_t> processes_in_pid_namespace(std::uint64_t inode) {
  std::vector<pid_t> out;
  if (inode == 0) return out;
  for (pid_t pid : all_pids()) {
    struct stat st;
    if (::stat(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), &st) == 0 &&
        st.st_ino == inode)
      out.push_back(pid);
  }
  return out;
}

std::vector<pid_t> jail_processes(const JailEntry& jail) {
  std::vector<pid_t> out = processes_in_pid_namespace(jail.pid_ns);
  for (pid_t pid : all_pids()) {
    std::istringstream uids(status_field(pid, "Uid"));
    uid_t real = 0, effective = 0;
    if (!(uids >> real >> effective)) continue;
    if ((real == jail.host_uid || effective == jail.host_uid) &&
        std::find(out.begin(), out.end(), pid) == out.end())
      out.push_back(pid);
  }
  return out;
}

std::vector<pid_t> wait_jail_gone(const JailEntry& jail, double timeout_s) {
  auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  for (;;) {
    auto left = jail_processes(jail);
    if (left.empty() || Clock::now() >= deadline) return left;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<pid_t> kill_jail_processes(const JailEntry& jail, double timeout_s) {
  for (pid_t pid : jail_processes(jail)) ::kill(pid, SIGKILL);
  return wait_jail_gone(jail, timeout_s);
}

std::string line(const std::string& out) {
  std::string s = out;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  for (auto& tid : list_dir(dir)) {
    std::ifstream f(dir + "/" + tid + "/children");
    pid_t c;
    while (f >> c) out.push_back(c);
  }
  return out;
}

bool socket_listening(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

std::vector<std::string> stockade_run_argv(const std::vector<std::string>& args) {
  std::vector<std::string> argv{stockade_bin(), "run", "-q"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace test
