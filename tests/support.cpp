#include "tests/support.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace test {

std::string stockade_bin() { return STOCKADE_BIN; }
std::string attack_bin() { return ATTACK_BIN; }

RunResult run(const std::vector<std::string>& argv, double timeout_s) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  RunResult r;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  bool killed = false;
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now())
                    .count();
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
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  if (killed) r.exit_code = -1;
  else if (WIFEXITED(st)) r.exit_code = WEXITSTATUS(st);
  else r.exit_code = 128 + WTERMSIG(st);
  return r;
}

RunResult stockade(const std::vector<std::string>& args, double timeout_s) {
  std::vector<std::string> argv{stockade_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, timeout_s);
}

RunResult attack(const std::vector<std::string>& options, const std::string& name,
                 const std::vector<std::string>& args, double timeout_s) {
  std::vector<std::string> argv{"run", "-q", "--ro-bind", attack_bin() + ":" + kAttackInJail};
  argv.insert(argv.end(), options.begin(), options.end());
  argv.push_back("--");
  argv.push_back(kAttackInJail);
  argv.push_back(name);
  argv.insert(argv.end(), args.begin(), args.end());
  return stockade(argv, timeout_s);
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

std::vector<std::string> registry_entries() { return list_dir("/run/stockade/jails"); }
std::vector<std::string> lease_entries() { return list_dir("/run/stockade/leases"); }

int host_mounts_mentioning(const std::string& s) {
  std::ifstream f("/proc/self/mountinfo");
  std::string line;
  int n = 0;
  while (std::getline(f, line))
    if (line.find(s) != std::string::npos) ++n;
  return n;
}

std::vector<pid_t> processes_with_uid(uid_t uid) {
  std::vector<pid_t> out;
  for (auto& name : list_dir("/proc")) {
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    struct stat st;
    if (::stat(("/proc/" + name).c_str(), &st) == 0 && st.st_uid == uid)
      out.push_back(static_cast<pid_t>(std::stoi(name)));
  }
  return out;
}

}  // namespace test
