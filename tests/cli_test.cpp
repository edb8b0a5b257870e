// The command line: nsjail's flags mean what they mean there, or are refused with the reason.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "cli/run_options.hpp"
#include "tests/support.hpp"

namespace {

// run's options built for `words` (or all of them), as main builds them; not parsed.
struct BuiltRun {
  CLI::App app;
  cli::RunOptions o;
  CLI::App* run;
  BuiltRun(const std::vector<std::string>& words, bool all) : run(app.add_subcommand("run")) {
    std::vector<const char*> w;
    for (auto& x : words) w.push_back(x.c_str());
    cli::add_run_options(run, o, w, all);
  }
};

// run's options built for `words` (or all of them), parsed from `words`: what main would see.
struct RunParse {
  cli::RunOptions o;
  std::vector<std::string> rest;
  std::string error;  // the ParseError's name, exit code and message
  std::string help;   // what --help prints, if it was asked for
  size_t built = 0;   // options on run, its help flag included
};

RunParse parse_run(const std::vector<std::string>& words, bool all) {
  RunParse p;
  BuiltRun b(words, all);
  b.run->prefix_command();
  p.built = b.run->get_options().size();
  std::vector<const char*> argv{"stockade", "run"};
  for (auto& w : words) argv.push_back(w.c_str());
  try {
    b.app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp& e) {
    p.error = e.get_name();
    p.help = b.run->help();
  } catch (const CLI::ParseError& e) {
    p.error = fmt::format("{} {} {}", e.get_name(), e.get_exit_code(), e.what());
  }
  if (b.run->parsed()) {
    cli::finish_run_options(b.run, b.o);
    p.rest = b.run->remaining();
  }
  p.o = b.o;
  return p;
}

}  // namespace

// nsjail's flags are declared with run's own and built the same way: only when named. The test
// below proves each is built in every spelling; here, that they are all there and that a
// command line of stockade's own options builds none of them.
TEST_CASE("nsjail's flags are declared with run's; a native command line builds none of them",
          "[cli]") {
  auto nsjail_options = [](const std::vector<std::string>& words, bool all) {
    BuiltRun b(words, all);
    int names = 0;
    for (const CLI::Option* opt : b.run->get_options())
      if (opt->get_group().find("nsjail") != std::string::npos)
        names += static_cast<int>(opt->get_lnames().size() + opt->get_snames().size());
    return names;
  };
  CHECK(nsjail_options({}, true) >= 30);
  CHECK(nsjail_options({"--help"}, false) == nsjail_options({}, true));
  CHECK(nsjail_options({"-qh"}, false) == nsjail_options({}, true));
  CHECK(nsjail_options({"-Mo", "--keep_caps"}, false) == 3);  // -M,--mode and --keep_caps
  CHECK(nsjail_options({"-q",
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
                        "/bin/true"},
                       false) == 0);
}

// main builds only the run options a command line names (building all of them, nsjail's among
// them, costs a launch ~0.3 ms): each must be built whenever it is named, in every spelling, or
// it would be refused as unknown.
TEST_CASE("every run option is built when the command line names it, in every spelling", "[cli]") {
  auto full = parse_run({}, true);
  REQUIRE(full.built >= 30);
  BuiltRun all_built({}, true);
  auto* all = all_built.run;
  auto built = [](const std::vector<std::string>& words, const std::string& name) {
    return BuiltRun(words, false).run->get_option_no_throw(name) != nullptr;
  };
  int names = 0;
  for (const CLI::Option* opt : all->get_options()) {
    for (auto& l : opt->get_lnames()) {
      if (l == "help") continue;
      INFO("--" << l);
      CHECK(built({"--" + l}, "--" + l));
      // Only it (and the help flag): its names are claimed, so nothing falls back to all.
      CHECK(parse_run({"--" + l}, false).built == 2);
      CHECK(built({"--" + l + "=1"}, "--" + l));
      CHECK(built({"-q", "--" + l, "x"}, "--" + l));
      ++names;
    }
    for (auto& s : opt->get_snames()) {
      if (s == "h") continue;
      INFO("-" << s);
      CHECK(built({"-" + s}, "-" + s));
      CHECK(parse_run({"-" + s}, false).built == 2);
      CHECK(built({"-q" + s}, "-" + s));        // combined short flags
      CHECK(built({"-" + s + "/x"}, "-" + s));  // a value joined on
      ++names;
    }
  }
  CHECK(names >= 38);
  // A command line naming one option builds that one (and the help flag), not all.
  CHECK(parse_run({"-q"}, false).built == 2);
  CHECK(parse_run({"--net", "none", "-B", "/a:/b"}, false).built == 3);
  // Help, and words no option claims, build all of them.
  for (std::vector<std::string> words : {std::vector<std::string>{"--help"},
                                         {"-h"},
                                         {"-qh"},
                                         {"-q", "--nope"},
                                         {"-Z"},
                                         {"-1"},
                                         {"--kill-grace", "-1"},
                                         {"-v"},
                                         {"--"}}) {
    INFO(words.back());
    CHECK(parse_run(words, false).built == full.built);
  }
}

// The point of building only what is named: CLI11 sees the same command line the same way.
TEST_CASE("run's options parse the same whether all are built or only those named", "[cli]") {
  const std::vector<std::vector<std::string>> lines = {
      {},
      {"-q"},
      {"--quiet=true"},
      {"-q", "-q"},
      {"/bin/echo", "-la"},
      {"-q", "/bin/echo", "--bind", "x"},
      {"-B/a:/b", "-T", "/t", "--ro-bind=/c:/d", "-R", "/e", "--bind", "/f", "-qT/g"},
      {"--user", "1000:1000", "--cap", "NET_BIND_SERVICE", "--cap", "NET_RAW"},
      {"--cap", "NET_BIND_SERVICE", "/bin/true"},
      {"-E", "A=1", "--env=B", "-H", "h", "-D", "/tmp", "-c", "/srv/root"},
      {"--rlimit", "nofile=64", "--rlimit", "as=1G:2G", "-t", "2.5", "--kill-grace", "1"},
      {"--net", "bridge", "--bridge", "br0", "--subnet", "10.1.0.0/24", "--egress",
       "10.1.0.0/24,tcp,443", "--dns", "10.1.0.1", "--allow-host", "mirror", "-p", "8080:80"},
      {"--host-ids", "100000:10", "--tmp-size", "8M", "--memory-max", "64M", "--pids-max", "10",
       "--cpu-ms-per-sec", "500", "--device", "/dev/fuse:rw", "--cgroup-parent", "a.slice"},
      {"--seccomp", "strict", "--policy", "p.toml"},
      {"--hostname", "-x"},
      {"--hostname", "--bind"},
      {"--kill-grace", "-1"},
      {"--pids-max", "abc"},
      {"--pids-max", "5", "--pids-max", "7"},
      {"--time-limit"},
      {"--cap"},
      {"--nope"},
      {"-Z", "/bin/true"},
      {"-qZ"},
      {"-v"},
      {"--net"},
      {"-q", "--help"},
      {"-qh"},
      {"-h"},
      {"--memory-max", "lots"},
      {"-t", "x"},
      {"-Mo", "-u", "1000", "-g", "100", "--rlimit_nofile", "64", "--rlimit_as=512", "-q"},
      {"--keep_caps", "-N", "-e"},
      {"--cgroup_pids_max", "x"},
      {"-P", "p.kafel", "--iface_no_lo"},
      {"--seccomp_policy=p.json", "-Ml", "-d"},
  };
  for (const auto& words : lines) {
    std::string shown;
    for (auto& w : words) shown += " " + w;
    INFO("stockade run" << shown);
    auto lazy = parse_run(words, false);
    auto full = parse_run(words, true);
    CHECK(lazy.error == full.error);
    CHECK(lazy.help == full.help);
    CHECK(lazy.rest == full.rest);
    CHECK(lazy.o.flags == full.o.flags);
    CHECK(lazy.o.nsjail == full.o.nsjail);
    CHECK(lazy.o.policy_file == full.o.policy_file);
    CHECK(lazy.o.quiet == full.o.quiet);
  }
  // The corpus reaches what it means to: parses, errors and help.
  CHECK(parse_run(lines[6], false).o.flags.mounts.size() == 6);
  CHECK(parse_run(lines[6], false).o.flags.mounts[5].second == "/g");
  CHECK(parse_run({"--pids-max", "abc"}, false).error.starts_with("ConversionError"));
  CHECK_THAT(parse_run({"-h"}, false).help, Catch::Contains("--cgroup-parent"));
  CHECK(parse_run({"--nope"}, false).rest == std::vector<std::string>{"--nope"});
  CHECK(parse_run({"--keep_caps", "-N", "-e"}, false).o.nsjail.refusals.size() == 3);
  CHECK(parse_run({"-Mo", "-u", "1000", "--rlimit_nofile", "64"}, false).o.nsjail.rlimits ==
        std::vector<std::string>{"nofile=64"});
}

// Without "--" the command is the first word no option takes: a repeatable option takes one
// value each time it is given, as nsjail's do, not every word up to the next option.
TEST_CASE("a repeatable run option takes one value each time; the command follows it", "[cli]") {
  using Strings = std::vector<std::string>;
  auto p = parse_run({"-B", "/a", "/bin/ls", "/a"}, false);
  CHECK(p.error.empty());
  CHECK(p.rest == Strings{"/bin/ls", "/a"});
  REQUIRE(p.o.flags.mounts.size() == 1);
  CHECK(p.o.flags.mounts[0].second == "/a");
  p = parse_run({"--cap", "NET_BIND_SERVICE", "/usr/bin/python3", "server.py"}, false);
  CHECK(p.o.flags.caps == Strings{"NET_BIND_SERVICE"});
  CHECK(p.rest == Strings{"/usr/bin/python3", "server.py"});
  p = parse_run({"--cap", "NET_BIND_SERVICE", "--cap=NET_RAW", "-E", "A=1", "-EB=2", "--", "x"},
                false);
  CHECK(p.o.flags.caps == Strings{"NET_BIND_SERVICE", "NET_RAW"});
  CHECK(p.o.flags.env == Strings{"A=1", "B=2"});
  for (Strings words : {Strings{"-R", "/a", "-T", "/t", "/bin/true"},
                        Strings{"--egress", "192.0.2.0/24", "--dns", "192.0.2.53", "/bin/true"},
                        Strings{"--rlimit", "nofile=64", "-p", "8080:80", "/bin/true"},
                        Strings{"--subnet", "10.9.0.0/24", "--allow-host", "h", "/bin/true"},
                        Strings{"--device", "/dev/fuse", "/bin/true"}}) {
    INFO(words.front());
    CHECK(parse_run(words, false).rest == Strings{"/bin/true"});
  }

  // And the jail runs it.
  auto r = test::stockade({"run", "-q", "-E", "GREETING=hello", "/bin/sh", "-c", "echo $GREETING"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "hello\n");
}

// main builds only the subcommands a command line has as words: help must still list them all.
TEST_CASE("help lists every subcommand however it is asked for; a second subcommand is refused",
          "[cli]") {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"--help"}, {"-h"}, {"-vh"}, {"--log-format", "json", "-h"}}) {
    auto r = test::stockade(args);
    INFO(args.front() << " " << args.back() << ": " << r.err);
    CHECK(r.exit_code == 0);
    for (const char* sub :
         {"run", "check", "ps", "inspect", "diagnose", "exec", "gc", "watch", "alerts"})
      CHECK_THAT(r.out, Catch::Contains(std::string("\n  ") + sub + " "));
  }
  auto r = test::stockade({"ps", "inspect"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("inspect"));
  // With a subcommand named, before or after it, help is that subcommand's, whole.
  for (std::vector<std::string> args : {std::vector<std::string>{"run", "--help"},
                                        {"--help", "run"},
                                        {"run", "-qh"},
                                        {"-h", "run"}}) {
    r = test::stockade(args);
    INFO(args.front() << " " << args.back() << ": " << r.err);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("--cgroup-parent"));
    CHECK_THAT(r.out, Catch::Contains("--rlimit_nofile"));  // nsjail's too
    CHECK_THAT(r.out, !Catch::Contains("\n  inspect "));
  }
  r = test::stockade({"-h", "gc"});
  CHECK_THAT(r.out, Catch::Contains("--bridges"));
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
