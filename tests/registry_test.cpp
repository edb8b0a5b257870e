#include "common/registry.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "tests/support.hpp"

namespace registry = common::registry;

namespace {
registry::JailRecord sample(const std::string& id, std::int64_t started) {
  registry::JailRecord r;
  r.id = id;
  r.supervisor_pid = ::getpid();
  r.init_pid = 4242;
  r.host_uid = r.host_gid = 1879048200;
  r.namespaces = {{"net", 4026532000}, {"user", 4026532001}};
  r.started_unix_ms = started;
  r.command = {"/bin/sh", "-c", "echo 'quoted' \"x\""};
  r.hostname = "stockade";
  r.net = "loopback";
  return r;
}
}  // namespace

TEST_CASE("registry entries round-trip through their JSON files", "[registry]") {
  test::TempDir tmp;
  std::string dir = tmp.path() + "/jails";
  REQUIRE(registry::ensure_dir(dir));
  REQUIRE(registry::write(dir, sample("aaaaaaaaaaaa", 2)));
  REQUIRE(registry::write(dir, sample("bbbbbbbbbbbb", 1)));
  auto r = registry::read(dir, "aaaaaaaaaaaa");
  REQUIRE(r);
  CHECK(r->init_pid == 4242);
  CHECK(r->command.at(2) == "echo 'quoted' \"x\"");
  CHECK(r->namespaces.at("net") == 4026532000u);
  auto all = registry::list(dir);
  REQUIRE(all.size() == 2);
  CHECK(all[0].id == "bbbbbbbbbbbb");  // sorted by start time
  CHECK(registry::supervisor_alive(all[0]));
  REQUIRE(registry::remove(dir, "aaaaaaaaaaaa"));
  CHECK_FALSE(registry::read(dir, "aaaaaaaaaaaa"));
  CHECK(registry::list(dir).size() == 1);
}

TEST_CASE("the registry directory is private to its owner", "[registry]") {
  test::TempDir tmp;
  std::string dir = tmp.path() + "/jails";
  REQUIRE(registry::ensure_dir(dir));
  struct stat st;
  REQUIRE(::stat(dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 077) == 0);
  // A directory someone made world-writable is refused, not trusted.
  std::string open_dir = tmp.path() + "/open";
  REQUIRE(::mkdir(open_dir.c_str(), 0777) == 0);
  REQUIRE(::chmod(open_dir.c_str(), 0777) == 0);
  CHECK_FALSE(registry::ensure_dir(open_dir + "/jails"));
}

TEST_CASE("ids that could walk out of the registry are refused", "[registry]") {
  test::TempDir tmp;
  for (const char* bad : {"../etc/passwd", "", "a/b", "UPPER"})
    CHECK_FALSE(registry::read(tmp.path(), bad));
}

TEST_CASE("an Entry guard removes the registry file when it goes out of scope", "[registry]") {
  test::TempDir tmp;
  std::string dir = tmp.path() + "/jails";
  REQUIRE(registry::ensure_dir(dir));
  REQUIRE(registry::write(dir, sample("cccccccccccc", 1)));
  { registry::Entry e(dir, "cccccccccccc"); }
  CHECK(registry::list(dir).empty());
  REQUIRE(registry::write(dir, sample("dddddddddddd", 1)));
  {
    registry::Entry e(dir, "dddddddddddd");
    e.release();
  }
  CHECK(registry::list(dir).size() == 1);
}

TEST_CASE("a corrupt registry file is reported, and skipped by list", "[registry]") {
  test::TempDir tmp;
  std::string dir = tmp.path() + "/jails";
  REQUIRE(registry::ensure_dir(dir));
  FILE* f = std::fopen((dir + "/eeeeeeeeeeee.json").c_str(), "w");
  REQUIRE(f);
  std::fputs("{\"id\": ", f);
  std::fclose(f);
  auto r = registry::read(dir, "eeeeeeeeeeee");
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().what, Catch::Contains("not a valid registry entry"));
  CHECK(registry::list(dir).empty());
}

// stockade watch is handed each new entry as an open file, which may outlive its name.
TEST_CASE("an entry is read from an open file after its name is gone; an oversized one is refused",
          "[registry]") {
  test::TempDir tmp;
  std::string dir = tmp.path() + "/jails";
  REQUIRE(registry::ensure_dir(dir));
  REQUIRE(registry::write(dir, sample("cccccccccccc", 3)));
  std::string path = dir + "/cccccccccccc.json";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(registry::remove(dir, "cccccccccccc"));
  auto r = registry::read_file(fd, path);
  ::close(fd);
  REQUIRE(r);
  CHECK(r->id == "cccccccccccc");
  CHECK(r->init_pid == 4242);

  std::string big = dir + "/big";
  {
    FILE* f = std::fopen(big.c_str(), "w");
    REQUIRE(f);
    std::string pad(1 << 16, ' ');
    for (int i = 0; i < 17; ++i) std::fputs(pad.c_str(), f);
    std::fclose(f);
  }
  fd = ::open(big.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  auto b = registry::read_file(fd, big);
  ::close(fd);
  REQUIRE_FALSE(b);
  CHECK_THAT(b.error().what, Catch::Contains("is not a registry entry"));
}
