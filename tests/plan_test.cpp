#include "supervisor/detail/plan.hpp"

#include <linux/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>

#include "supervisor/detail/skeleton.hpp"
#include "tests/support.hpp"

using supervisor::detail::make_plan;
using supervisor::detail::MountOp;
using supervisor::detail::resolve_trusted_path;

namespace {
policy::JailSpec spec_for(std::vector<std::string> argv) {
  policy::RunFlags f;
  f.command = std::move(argv);
  return *policy::make_spec(f);
}
const MountOp* find_op(const supervisor::detail::ChildPlan& p, const std::string& dst) {
  for (auto& m : p.mounts)
    if (m.dst == dst) return &m;
  return nullptr;
}
}  // namespace

TEST_CASE("paths resolve through symlinks that root or the caller own", "[plan]") {
  test::TempDir tmp;
  std::string real = tmp.path() + "/real";
  REQUIRE(::mkdir(real.c_str(), 0755) == 0);
  REQUIRE(::symlink("real", (tmp.path() + "/link").c_str()) == 0);
  auto r = resolve_trusted_path(tmp.path() + "/link/../link/./");
  REQUIRE(r);
  CHECK(*r == real);
  CHECK_FALSE(resolve_trusted_path(tmp.path() + "/missing"));
  CHECK_FALSE(resolve_trusted_path("relative/path"));
}

TEST_CASE("a symlink owned by another uid (a jail's) is refused, not followed", "[plan][root]") {
  SKIP_UNLESS_ROOT();
  test::TempDir tmp;
  std::string link = tmp.path() + "/cache";
  REQUIRE(::symlink("/etc", link.c_str()) == 0);
  REQUIRE(::lchown(link.c_str(), 1879048100, 1879048100) == 0);
  auto r = resolve_trusted_path(link + "/passwd");
  REQUIRE_FALSE(r);
  CHECK(r.error().err == EPERM);
  CHECK_THAT(r.error().what, Catch::Contains("symlink owned by uid 1879048100"));
}

TEST_CASE("a symlink loop is reported instead of followed forever", "[plan]") {
  test::TempDir tmp;
  REQUIRE(::symlink("b", (tmp.path() + "/a").c_str()) == 0);
  REQUIRE(::symlink("a", (tmp.path() + "/b").c_str()) == 0);
  auto r = resolve_trusted_path(tmp.path() + "/a");
  REQUIRE_FALSE(r);
  CHECK(r.error().err == ELOOP);
}

TEST_CASE("the plan mounts /proc/sys read-only, /usr read-only, and a bounded /tmp", "[plan]") {
  auto plan = make_plan(spec_for({"/bin/true"}), /*rootless=*/true);
  REQUIRE(plan);
  auto* usr = find_op(**plan, "usr");
  REQUIRE(usr);
  CHECK((usr->attr & MOUNT_ATTR_RDONLY) != 0);
  CHECK((usr->attr & MOUNT_ATTR_NOSUID) != 0);
  auto* sys = find_op(**plan, "proc/sys");
  REQUIRE(sys);
  CHECK(sys->kind == MountOp::Kind::kReadOnly);
  auto* tmp = find_op(**plan, "tmp");
  REQUIRE(tmp);
  CHECK_THAT(tmp->data, Catch::Contains("size="));
  // No tty or disk device is ever exposed.
  for (auto& m : (*plan)->mounts)
    if (m.dst.starts_with("dev/") && m.kind == MountOp::Kind::kBind)
      CHECK((m.dst == "dev/null" || m.dst == "dev/zero" || m.dst == "dev/full" ||
             m.dst == "dev/random" || m.dst == "dev/urandom"));
}

TEST_CASE("the plan carries argv and the environment as NULL-terminated arrays", "[plan]") {
  auto plan = make_plan(spec_for({"ls", "-l"}), true);
  REQUIRE(plan);
  auto& p = **plan;
  REQUIRE(p.argv.size() == 3);
  CHECK(std::string(p.argv[0]) == "ls");
  CHECK(p.argv[2] == nullptr);
  CHECK(p.envp.back() == nullptr);
  CHECK_FALSE(p.path_dirs.empty());
}

TEST_CASE("a user bind of a missing source fails before anything is started", "[plan]") {
  policy::RunFlags f;
  f.command = {"/bin/true"};
  f.mounts = {{policy::RunFlags::MountFlag::kBind, "/surely/not/here:/data"}};
  auto plan = make_plan(*policy::make_spec(f), true);
  REQUIRE_FALSE(plan);
  CHECK(plan.error().err == ENOENT);
  CHECK_THAT(plan.error().what, Catch::Contains("--bind '/surely/not/here'"));
}

// The shared /etc skeleton is reused while its version stands: every way a host file it copies
// can change must give a new version, or jails would keep a stale copy.
TEST_CASE("the skeleton's version follows every change to what it copies", "[plan]") {
  using supervisor::detail::skeleton_version;
  test::TempDir etc;
  auto write = [&](const std::string& rel, const std::string& text) {
    FILE* f = std::fopen((etc.path() + "/" + rel).c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(text.c_str(), f);
    std::fclose(f);
  };
  REQUIRE(::mkdir((etc.path() + "/ld.so.conf.d").c_str(), 0755) == 0);
  write("passwd", "root:x:0:0::/root:/bin/sh\n");
  write("ld.so.conf.d/a.conf", "/opt/a/lib\n");
  const std::string v0 = skeleton_version(etc.path());
  CHECK(v0.size() == 16);
  CHECK(v0.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(skeleton_version(etc.path()) == v0);  // nothing changed: the skeleton is reused
  // A file it does not copy comes and goes beside the ones it does (etc's own times change).
  write("resolv.conf", "nameserver 192.0.2.1\n");
  REQUIRE(::unlink((etc.path() + "/resolv.conf").c_str()) == 0);
  CHECK(skeleton_version(etc.path()) == v0);

  // Edited in place: the directory's mtime stays, the file's size and times change.
  write("ld.so.conf.d/a.conf", "/opt/a/lib\n/opt/a/lib64\n");
  const std::string v1 = skeleton_version(etc.path());
  CHECK(v1 != v0);
  write("ld.so.conf.d/b.conf", "/opt/b/lib\n");  // added
  const std::string v2 = skeleton_version(etc.path());
  CHECK(v2 != v1);
  REQUIRE(::unlink((etc.path() + "/ld.so.conf.d/b.conf").c_str()) == 0);  // removed
  CHECK(skeleton_version(etc.path()) != v2);
  // Replaced by rename, as package managers do.
  const std::string v3 = skeleton_version(etc.path());
  write("passwd.new", "root:x:0:0::/root:/bin/bash\n");
  REQUIRE(::rename((etc.path() + "/passwd.new").c_str(), (etc.path() + "/passwd").c_str()) == 0);
  CHECK(skeleton_version(etc.path()) != v3);
}
