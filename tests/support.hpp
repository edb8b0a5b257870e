// Test helpers: run the real stockade binary and the attack programs inside jails.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace test {

struct RunResult {
  int exit_code = -1;  // -1: did not finish within the timeout (it was killed)
  std::string out, err;
};

// Runs argv (argv[0] a path) with stdin from /dev/null, capturing stdout and stderr.
RunResult run(const std::vector<std::string>& argv, double timeout_s = 60);

// stockade with args, e.g. stockade({"run", "--", "/bin/true"}).
RunResult stockade(const std::vector<std::string>& args, double timeout_s = 60);

// stockade run [options] -- <attack binary, bound in at /attack> name [args].
RunResult attack(const std::vector<std::string>& options, const std::string& name,
                 const std::vector<std::string>& args = {}, double timeout_s = 60);

// The path of the attack program inside jails.
inline const char* kAttackInJail = "/attack";

std::string stockade_bin();
std::string attack_bin();

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

// A test-unique name: prefix plus the pid and a counter.
std::string unique_name(const std::string& prefix);

// Entries in the registry directory (for leak checks).
std::vector<std::string> registry_entries();
// Leases held or present in the lease directory.
std::vector<std::string> lease_entries();
// Host mounts whose mount point or source mentions s.
int host_mounts_mentioning(const std::string& s);
// pids of processes whose uid is uid (host view).
std::vector<pid_t> processes_with_uid(uid_t uid);

}  // namespace test

#define SKIP_UNLESS_ROOT()                                                      \
  do {                                                                          \
    if (::geteuid() != 0) {                                                     \
      WARN("skipped: needs root to create namespaces, leases and the registry"); \
      return;                                                                   \
    }                                                                           \
  } while (0)
