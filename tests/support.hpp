// Test helpers: run the real stockade binary and the attack programs inside jails.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace test {

struct RunResult {
  int exit_code = -1;  // -1: did not finish within the timeout (it was killed)
  std::string out, err;
};

// How a child is started. The defaults give what run(argv, timeout) always did.
struct RunOptions {
  double timeout_s = 60;
  // The child's stdin; -1 means /dev/null. The caller keeps ownership.
  int stdin_fd = -1;
  // {fd in this process, fd number in the child}: left open across exec (not close-on-exec),
  // as a careless launcher would leave them.
  std::vector<std::pair<int, int>> pass_fds;
  // If set, the child drops all supplementary groups and switches to this uid/gid before exec.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // If set, the child's entire environment ("NAME=VALUE"); otherwise it inherits ours.
  std::optional<std::vector<std::string>> env;
};

// Runs argv (argv[0] a path) with stdin from /dev/null, capturing stdout and stderr.
RunResult run(const std::vector<std::string>& argv, double timeout_s = 60);
RunResult run(const std::vector<std::string>& argv, const RunOptions& options);

// stockade with args, e.g. stockade({"run", "--", "/bin/true"}).
RunResult stockade(const std::vector<std::string>& args, double timeout_s = 60);
RunResult stockade(const std::vector<std::string>& args, const RunOptions& options);

// stockade run [options] -- <attack binary, bound in at /attack> name [args].
RunResult attack(const std::vector<std::string>& options, const std::string& name,
                 const std::vector<std::string>& args = {}, double timeout_s = 60);
RunResult attack(const std::vector<std::string>& options, const std::string& name,
                 const std::vector<std::string>& args, const RunOptions& run_options);

// The attack binary run directly on the host, outside any jail: the positive control that
// shows an attack is real when nothing stops it.
RunResult attack_on_host(const std::string& name, const std::vector<std::string>& args = {},
                         const RunOptions& run_options = {});

// The argv of `stockade run -q --ro-bind <attack>:/attack OPTIONS -- /attack NAME ARGS`.
std::vector<std::string> attack_argv(const std::vector<std::string>& options,
                                     const std::string& name,
                                     const std::vector<std::string>& args = {});

// The path of the attack program inside jails.
inline const char* kAttackInJail = "/attack";

// The whole of a file (empty if it cannot be read).
std::string read_file(const std::string& path);

std::string stockade_bin();
// The argv of `stockade run -q ARGS...` (for a Process).
std::vector<std::string> stockade_run_argv(const std::vector<std::string>& args);
std::string attack_bin();

// A process started in the background (fork/exec), its stdout and stderr kept in memory files.
// If it still runs when the guard goes, its children are SIGKILLed first (for a supervisor: the
// jail's init, which takes the jail with it) and it gets 2 s to finish on its own; then it is
// SIGKILLed and reaped. Everything by pid.
class Process {
 public:
  explicit Process(const std::vector<std::string>& argv, const RunOptions& options = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }
  // Sends sig to the process (not its group).
  void signal(int sig) const;
  // Waits up to timeout_s for it to end. Returns its exit status as RunResult::exit_code does
  // (128+N for a signal), or -1 if it is still running.
  int wait(double timeout_s);
  bool done() const { return done_; }
  std::string out() const;
  std::string err() const;

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  bool done_ = false;
  int exit_code_ = -1;
};

// A fresh directory under /tmp, removed (recursively) when the guard goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs fn in a forked child with no_new_privs and the seccomp programs loaded in order (as a jail
// loads them); returns fn's result (an errno, or 0), or -1 if a program failed to load.
int errno_under_programs(const std::vector<std::vector<sock_filter>>& programs,
                         const std::function<int()>& fn);

// errno if rc < 0, else 0.
inline int errno_of(long rc) { return rc < 0 ? errno : 0; }

// A test-unique name: prefix plus the pid and a counter.
std::string unique_name(const std::string& prefix);

// Entries in the registry directory (for leak checks).
std::vector<std::string> registry_entries();
// Leases held or present in the lease directory.
std::vector<std::string> lease_entries();
// The same, only those no running jail holds: entries whose supervisor is gone, lease files
// nobody has locked. (Jails of other test runs on this host come and go meanwhile.)
std::vector<std::string> registry_entries_left_behind();
std::vector<std::string> leases_left_behind();
// Host mounts whose mount point or source mentions s.
int host_mounts_mentioning(const std::string& s);
// pids of processes whose uid is uid (host view).
std::vector<pid_t> processes_with_uid(uid_t uid);

inline const char* kRegistryDir = "/run/stockade/jails";
inline const char* kLeaseDir = "/run/stockade/leases";

// One registry entry, as the file on disk says (parsed here, independently of the product).
struct JailEntry {
  std::string id;
  pid_t supervisor_pid = 0;
  pid_t init_pid = 0;
  uid_t host_uid = 0;
  gid_t host_gid = 0;
  std::uint64_t pid_ns = 0;  // inode of the jail's pid namespace
  std::string json;          // the whole file
};

std::string registry_path(const std::string& id);
std::string lease_path(uid_t host_uid);
// The entry written by the supervisor with this pid, if there is one.
std::optional<JailEntry> find_jail(pid_t supervisor_pid);
// Polls for it until timeout_s (or until the supervisor has exited).
std::optional<JailEntry> wait_for_jail(const Process& supervisor, double timeout_s = 10);

// Every process (host pids) whose pid namespace has this inode.
std::vector<pid_t> processes_in_pid_namespace(std::uint64_t inode);
// Every process of the jail: in its pid namespace, or running as its host uid (as seen in
// /proc/PID/status, which does not depend on dumpability).
std::vector<pid_t> jail_processes(const JailEntry& jail);
// SIGKILLs every process of the jail, by pid, and waits up to timeout_s for them to go.
// Returns what is left.
std::vector<pid_t> kill_jail_processes(const JailEntry& jail, double timeout_s = 5);
// Polls until jail_processes is empty; returns what is left after timeout_s.
std::vector<pid_t> wait_jail_gone(const JailEntry& jail, double timeout_s = 5);
// The children of pid (host pids).
std::vector<pid_t> children_of(pid_t pid);

// True if something accepts connections on the unix (SOCK_SEQPACKET) socket at path.
bool socket_listening(const std::string& path);

// True if a process with this pid exists and is not a zombie.
bool alive(pid_t pid);

// out without its trailing newline: an attack's one-line report.
std::string line(const std::string& out);

}  // namespace test

#define SKIP_UNLESS_ROOT()                                                       \
  do {                                                                           \
    if (::geteuid() != 0) {                                                      \
      WARN("skipped: needs root to create namespaces, leases and the registry"); \
      return;                                                                    \
    }                                                                            \
  } while (0)
