// Locating the shim library and inspecting ELF binaries for shim mode.
#include "shim_support.h"

#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include <fmt/format.h>

#include "file_util.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

bool is_file(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

/// What matters about an ELF file for LD_PRELOAD.
struct ElfFacts {
  bool dynamic = false;  // has PT_INTERP: started by the dynamic loader
  bool go = false;       // has a .go.buildinfo section or a Go build ID note
};

Result<ElfFacts> inspect_elf(const std::string& path) {
  auto data = read_whole_file(path, "program");
  if (!data) return data.error();
  const std::string& d = *data;
  if (d.size() < sizeof(Elf64_Ehdr) || std::memcmp(d.data(), ELFMAG, SELFMAG) != 0) {
    return error(fmt::format("{} is not an ELF binary", path));
  }
  if (d[EI_CLASS] != ELFCLASS64) return error(fmt::format("{} is not a 64-bit ELF binary", path));
  Elf64_Ehdr eh;
  std::memcpy(&eh, d.data(), sizeof eh);
  ElfFacts facts;
  for (size_t i = 0; i < eh.e_phnum; ++i) {
    size_t off = eh.e_phoff + i * eh.e_phentsize;
    if (off + sizeof(Elf64_Phdr) > d.size()) break;
    Elf64_Phdr ph;
    std::memcpy(&ph, d.data() + off, sizeof ph);
    if (ph.p_type == PT_INTERP) facts.dynamic = true;
  }
  // Go binaries carry these markers whatever their linking.
  facts.go =
      d.find(".go.buildinfo") != std::string::npos || d.find("Go build ID:") != std::string::npos;
  return facts;
}

}  // namespace

std::string find_executable(const std::string& command) {
  if (command.find('/') != std::string::npos) {
    return is_file(command) && access(command.c_str(), X_OK) == 0 ? command : "";
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = fmt::format("{}/{}", dirs.substr(start, end - start), command);
    if (is_file(candidate) && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

Result<std::string> find_shim_library() {
  if (const char* env = std::getenv("BATON_SHIM_LIBRARY"); env && *env) {
    if (is_file(env)) return std::string(env);
    return error(fmt::format("BATON_SHIM_LIBRARY={} is not a file", env));
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<std::string> candidates;
  if (!ec) {
    // A build tree (build/supervisor/baton, build/shim/), then an install
    // tree moved as a whole (PREFIX/bin/baton, PREFIX/LIBDIR/baton/).
    candidates.push_back((exe.parent_path() / "../shim/libbaton_shim.so").lexically_normal());
    candidates.push_back((exe.parent_path() / ".." / BATON_SHIM_RELATIVE_PATH).lexically_normal());
  }
  candidates.push_back(BATON_SHIM_INSTALL_PATH);
  for (const std::string& c : candidates) {
    if (is_file(c)) return c;
  }
  return error(
      fmt::format("cannot find the shim library libbaton_shim.so (looked in {}); set "
                  "BATON_SHIM_LIBRARY",
                  fmt::join(candidates, ", ")));
}

Status check_shim_target(const std::string& command) {
  std::string path = find_executable(command);
  if (path.empty()) return error(fmt::format("shim: cannot find the command {}", command));
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return sys_error(fmt::format("shim: cannot stat {}", path));
  if (st.st_mode & (S_ISUID | S_ISGID)) {
    return error(
        fmt::format("shim: {} is setuid/setgid: the dynamic loader ignores LD_PRELOAD "
                    "for it, so the shim cannot hand it baton's sockets",
                    path));
  }
  auto facts = inspect_elf(path);
  if (!facts) return error(fmt::format("shim: {}", facts.error().message));
  if (facts->go) {
    return error(
        fmt::format("shim: {} is a Go program: it makes system calls directly, so the "
                    "shim cannot reach it (Go programs can use LISTEN_FDS natively)",
                    path));
  }
  if (!facts->dynamic) {
    return error(
        fmt::format("shim: {} is statically linked: LD_PRELOAD cannot reach it, so the "
                    "shim cannot hand it baton's sockets",
                    path));
  }
  return {};
}

}  // namespace baton
