// Attack programs, run inside jails by the tests. `attack NAME [ARGS]` performs one attack and
// prints "errno=NAME" (the attack failed with that error) or "ok" (it worked); exit status 0
// means the attack was carried out and reported, 2 means a bad name.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {
int report(int rc) {
  if (rc >= 0) std::printf("ok\n");
  else std::printf("errno=%s\n", strerrorname_np(errno));
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string name = argv[1];
  (void)report;
  std::fprintf(stderr, "attack: unknown attack '%s'\n", name.c_str());
  return 2;
}
