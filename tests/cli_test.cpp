// The command line: nsjail's flags mean what they mean there, or are refused with the reason.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "cli/nsjail_flags.hpp"
#include "tests/support.hpp"

// main registers nsjail's flags only when the command line may use one (they cost a launch
// ~0.25 ms): every one of them, in every spelling, must be noticed, or it would be refused as
// unknown.
TEST_CASE("every nsjail flag is noticed on the command line; stockade's own are not", "[cli]") {
  CLI::App app;
  auto* run = app.add_subcommand("run");
  cli::NsjailFlags n;
  cli::add_nsjail_flags(run, n);
  auto wants = [](std::vector<std::string> words) {
    words.insert(words.begin(), {"stockade", "run"});
    std::vector<const char*> argv;
    for (auto& w : words) argv.push_back(w.c_str());
    return cli::wants_nsjail_flags(static_cast<int>(argv.size()), argv.data());
  };
  int names = 0;
  for (const CLI::Option* o : run->get_options()) {
    if (o->get_group().find("nsjail") == std::string::npos) continue;
    for (auto& l : o->get_lnames()) {
      INFO("--" << l);
      CHECK(wants({"--" + l}));
      CHECK(wants({"-q", "--" + l + "=1"}));
      ++names;
    }
    for (auto& s : o->get_snames()) {
      INFO("-" << s);
      CHECK(wants({"-" + s}));
      CHECK(wants({"-q" + s}));  // combined short flags
      ++names;
    }
  }
  CHECK(names >= 30);
  CHECK(wants({"--help"}));
  CHECK(wants({"-h"}));
  // A native command line builds none of them.
  CHECK_FALSE(wants({"-q",
                     "--net",
                     "none",
                     "-B",
                     "/a:/b",
                     "-R",
                     "/c",
                     "-T",
                     "/tmp",
                     "-E",
                     "A=1",
                     "-H",
                     "h",
                     "-t",
                     "5",
                     "-D",
                     "/",
                     "--cap",
                     "NET_BIND_SERVICE",
                     "--rlimit",
                     "nofile=64",
                     "--memory-max",
                     "64M",
                     "/bin/true"}));
}

TEST_CASE("nsjail flags that would weaken a jail are refused with the reason, before any setup",
          "[cli]") {
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  for (const Case& c :
       {Case{{"--keep_caps"}, "--keep_caps: stockade never hands a jail all"},
        Case{{"-N"}, "host's network namespace is never shared"},
        Case{{"--disable_clone_newuser"}, "always has its own user namespace"},
        Case{{"--disable_proc"}, "always gets its own /proc"},
        Case{{"-e"}, "the environment is cleared"}, Case{{"-Ml"}, "one command in one jail"},
        Case{{"-u", "1000:2000"}, "stockade leases the host id"},
        Case{{"--seccomp_policy", "x.kafel"}, "kafel policies are not read"}}) {
    std::vector<std::string> args{"run"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    args.insert(args.end(), {"--", "/bin/true"});
    auto r = test::stockade(args);
    INFO(c.args[0] << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(c.says));
  }
}

TEST_CASE("nsjail's cgroup flags are enforced as root and refused without, never ignored",
          "[cli]") {
  auto r = test::stockade({"run", "-q", "--cgroup_mem_max", "67108864", "--cgroup_pids_max", "64",
                           "--cgroup_cpu_ms_per_sec", "800", "--", "/bin/true"});
  INFO(r.err);
  if (::geteuid() == 0) {
    CHECK(r.exit_code == 0);
  } else {
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("limits without root"));
  }
}

TEST_CASE("an nsjail one-liner runs with the same meaning", "[cli][root]") {
  SKIP_UNLESS_ROOT();
  test::TempDir dir;
  // The jail's host uid is not the directory's owner: it must be able to enter it.
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  {
    FILE* f = std::fopen((dir.path() + "/in").c_str(), "w");
    REQUIRE(f);
    std::fputs("bound\n", f);
    std::fclose(f);
  }
  auto r = test::stockade({"run",
                           "-Mo",
                           "-R",
                           dir.path() + ":/data",
                           "-T",
                           "/scratch",
                           "-E",
                           "GREETING=hi",
                           "-H",
                           "nsj",
                           "-u",
                           "1000",
                           "-g",
                           "1000",
                           "-t",
                           "30",
                           "--rlimit_as",
                           "512",
                           "--rlimit_nofile",
                           "64",
                           "-q",
                           "--",
                           "/bin/sh",
                           "-c",
                           "id -u; id -g; hostname; cat /data/in; echo $GREETING; ulimit -n; "
                           "ulimit -v; touch /scratch/x && echo tmpfs"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "1000\n1000\nnsj\nbound\nhi\n64\n524288\ntmpfs\n");
}

TEST_CASE("what an imported seccomp profile skipped is told to the operator, and the jail runs",
          "[cli][root]") {
  SKIP_UNLESS_ROOT();
  auto r =
      test::stockade({"run", "-q", "--seccomp",
                      std::string(POLICIES_DIR) + "/oci/unknown_syscall.json", "--", "/bin/true"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err,
             Catch::Contains("syscall 'no_such_syscall_xyz' is not known on x86_64, skipped"));
}
