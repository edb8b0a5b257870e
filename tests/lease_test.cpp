#include "supervisor/detail/lease.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <set>

#include "tests/support.hpp"

using supervisor::detail::IdLease;
using supervisor::detail::lease_host_id;

TEST_CASE("leases from one range never share an id while held", "[lease]") {
  test::TempDir tmp;
  std::string dir = tmp.path() + "/leases";
  policy::IdRange range{2000000000, 64};
  std::vector<IdLease> held;
  std::set<uid_t> ids;
  for (int i = 0; i < 64; ++i) {
    auto l = lease_host_id(range, dir);
    REQUIRE(l);
    CHECK(l->id() >= range.first);
    CHECK(l->id() < range.first + range.count);
    ids.insert(l->id());
    held.push_back(std::move(*l));
  }
  CHECK(ids.size() == 64);
  auto full = lease_host_id(range, dir);
  REQUIRE_FALSE(full);
  CHECK_THAT(full.error().what, Catch::Contains("widen --host-ids"));
  held.pop_back();  // released: its id can be leased again
  CHECK(lease_host_id(range, dir));
}

TEST_CASE("a lease is released by the kernel when its holder dies without cleaning up", "[lease]") {
  test::TempDir tmp;
  std::string dir = tmp.path() + "/leases";
  policy::IdRange range{2000000000, 1};
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    auto l = lease_host_id(range, dir);
    char c = l ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::pause();
    ::_exit(0);
  }
  char c = 0;
  REQUIRE(::read(ready[0], &c, 1) == 1);
  REQUIRE(c == 'y');
  CHECK_FALSE(lease_host_id(range, dir));  // held by the child
  ::kill(pid, SIGKILL);
  int st;
  ::waitpid(pid, &st, 0);
  CHECK(lease_host_id(range, dir));  // the crash did not leak it
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_CASE("a released lease removes its file", "[lease]") {
  test::TempDir tmp;
  std::string dir = tmp.path() + "/leases";
  uid_t id;
  {
    auto l = lease_host_id({2000000000, 4}, dir);
    REQUIRE(l);
    id = l->id();
    CHECK(::access((dir + "/" + std::to_string(id)).c_str(), F_OK) == 0);
  }
  CHECK(::access((dir + "/" + std::to_string(id)).c_str(), F_OK) != 0);
}
