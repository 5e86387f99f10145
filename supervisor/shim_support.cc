// Locating the shim library, and telling whether the program a command runs
// (an ELF binary, or the interpreter of a #! script) can be reached by it.
#include "shim_support.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "file_util.h"
#include "unique_fd.h"

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

/// The first bytes of a file, as much as the kernel reads to tell an ELF
/// binary from a #! script (BINPRM_BUF_SIZE).
constexpr size_t kExecHead = 256;

/// At most this many #! scripts in a row are followed (a script whose
/// interpreter is a script ...), as the kernel bounds them too.
constexpr int kMaxScripts = 4;

/// What a #! line names, as the kernel splits it: the interpreter (up to
/// the first space or tab) and at most one argument (the rest of the line,
/// trimmed).
struct Shebang {
  std::string interpreter;
  std::string argument;
};

std::optional<Shebang> parse_shebang(const std::string& head) {
  if (!head.starts_with("#!")) return std::nullopt;
  std::string line = head.substr(
      2, head.find('\n') == std::string::npos ? std::string::npos : head.find('\n') - 2);
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  size_t at = 0;
  while (at < line.size() && blank(line[at])) ++at;
  size_t end = at;
  while (end < line.size() && !blank(line[end])) ++end;
  Shebang s{line.substr(at, end - at), ""};
  while (end < line.size() && blank(line[end])) ++end;
  size_t last = line.size();
  while (last > end && blank(line[last - 1])) --last;
  s.argument = line.substr(end, last - end);
  return s;
}

/// The program `env ARGUMENT` runs, as the one argument of a #! line gives
/// it: one word, or with -S (--split-string) words split at blanks, past
/// env's options and NAME=VALUE assignments. Empty when there is none.
std::string env_command(const std::string& argument) {
  std::vector<std::string> words;
  std::string split;
  if (argument.starts_with("--split-string=")) {
    split = argument.substr(15);
  } else if (argument.starts_with("--split-string")) {
    split = argument.substr(14);
  } else if (argument.starts_with("-S")) {
    split = argument.substr(2);
  } else {
    words.push_back(argument);
  }
  for (size_t at = 0; at < split.size();) {
    size_t end = split.find_first_of(" \t", at);
    if (end == std::string::npos) end = split.size();
    if (end > at) words.push_back(split.substr(at, end - at));
    at = end + 1;
  }
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (w == "-u" || w == "-C" || w == "--unset" || w == "--chdir") {
      ++i;  // the option's value
    } else if (!w.starts_with("-") && w.find('=') == std::string::npos) {
      return w;
    }
  }
  return "";
}

/// Reads `len` bytes at `offset` of `fd` into `out`; false if the file is
/// shorter or the read fails.
bool read_at(int fd, uint64_t offset, size_t len, std::string& out) {
  out.resize(len);
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, out.data() + got, len - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

/// Bounds on what is read of a binary: its headers, section names and
/// notes, never the whole file (node is 100 MB, and a reload checks again).
constexpr size_t kMaxHeaders = 4 << 20;
constexpr size_t kMaxNotes = 64 << 10;
constexpr size_t kMaxScan = 1 << 20;

/// Whether a PT_NOTE segment holds Go's build ID note (owner "Go", type 4).
bool has_go_note(const std::string& notes) {
  for (size_t at = 0; at + 12 <= notes.size();) {
    uint32_t namesz, descsz, type;
    std::memcpy(&namesz, notes.data() + at, 4);
    std::memcpy(&descsz, notes.data() + at + 4, 4);
    std::memcpy(&type, notes.data() + at + 8, 4);
    size_t name_at = at + 12;
    if (namesz > notes.size() || name_at + namesz > notes.size()) return false;
    // Go's linker writes the name "Go\0\0" (namesz 4).
    if (type == 4 && (namesz == 3 || namesz == 4) &&
        std::memcmp(notes.data() + name_at, "Go", 3) == 0)
      return true;
    at = name_at + ((namesz + 3) & ~3u) + ((static_cast<size_t>(descsz) + 3) & ~size_t{3});
  }
  return false;
}

/// The names of the sections of the ELF file on `fd` (header `eh`).
std::vector<std::string> section_names(int fd, const Elf64_Ehdr& eh) {
  std::vector<std::string> names;
  if (eh.e_shnum == 0 || eh.e_shentsize < sizeof(Elf64_Shdr) || eh.e_shstrndx >= eh.e_shnum)
    return names;
  size_t size = static_cast<size_t>(eh.e_shnum) * eh.e_shentsize;
  std::string table, strings;
  if (size > kMaxHeaders || !read_at(fd, eh.e_shoff, size, table)) return names;
  Elf64_Shdr strtab;
  std::memcpy(&strtab, table.data() + static_cast<size_t>(eh.e_shstrndx) * eh.e_shentsize,
              sizeof strtab);
  if (strtab.sh_size > kMaxHeaders || !read_at(fd, strtab.sh_offset, strtab.sh_size, strings))
    return names;
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, table.data() + i * eh.e_shentsize, sizeof sh);
    if (sh.sh_name < strings.size()) names.emplace_back(strings.c_str() + sh.sh_name);
  }
  return names;
}

Result<ElfFacts> inspect_elf(const std::string& path, const std::string& subject) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return sys_error(fmt::format("cannot read program {}", path));
  std::string head;
  if (!read_at(fd.get(), 0, sizeof(Elf64_Ehdr), head) ||
      std::memcmp(head.data(), ELFMAG, SELFMAG) != 0) {
    return error(fmt::format("{} is neither an ELF binary nor a script with a #! line", subject));
  }
  if (head[EI_CLASS] != ELFCLASS64) {
    return error(fmt::format("{} is not a 64-bit ELF binary", subject));
  }
  Elf64_Ehdr eh;
  std::memcpy(&eh, head.data(), sizeof eh);
  ElfFacts facts;
  std::string phdrs;
  size_t ph_size = static_cast<size_t>(eh.e_phnum) * eh.e_phentsize;
  if (eh.e_phentsize >= sizeof(Elf64_Phdr) && ph_size <= kMaxHeaders &&
      read_at(fd.get(), eh.e_phoff, ph_size, phdrs)) {
    for (size_t i = 0; i < eh.e_phnum; ++i) {
      Elf64_Phdr ph;
      std::memcpy(&ph, phdrs.data() + i * eh.e_phentsize, sizeof ph);
      if (ph.p_type == PT_INTERP) facts.dynamic = true;
      std::string notes;
      if (ph.p_type == PT_NOTE && ph.p_filesz <= kMaxNotes &&
          read_at(fd.get(), ph.p_offset, ph.p_filesz, notes) && has_go_note(notes))
        facts.go = true;
    }
  }
  // Go binaries carry these markers whatever their linking: the sections,
  // or (without section headers) the build ID Go's linker puts at the start
  // of the text.
  for (const std::string& name : section_names(fd.get(), eh)) {
    if (name == ".go.buildinfo" || name == ".note.go.buildid") facts.go = true;
  }
  std::string start;
  if (!facts.go && eh.e_shnum == 0) {
    struct stat st;
    size_t scan = fstat(fd.get(), &st) == 0 ? std::min<size_t>(st.st_size, kMaxScan) : 0;
    facts.go = read_at(fd.get(), 0, scan, start) && start.find("Go build ID:") != std::string::npos;
  }
  return facts;
}

/// The program the kernel ends up running for `path`: `path` itself, or
/// the interpreter its #! line names (through env, and through scripts
/// that are interpreters in turn). `subject` names it in messages: "PATH",
/// or "PROGRAM (the #! interpreter of SCRIPT, through ...)".
struct Target {
  std::string path;
  std::string subject;
};

Result<Target> follow_scripts(const std::string& program) {
  std::string path = program;
  std::string script;                // the outermost script, once there is one
  std::vector<std::string> through;  // scripts and env programs in between
  auto name = [&](const std::string& p) {
    if (script.empty()) return p;
    std::string via;
    for (const std::string& t : through) via += ", through " + t;
    return fmt::format("{} (the #! interpreter of {}{})", p, script, via);
  };
  for (int scripts = 0;; ++scripts) {
    auto head = read_file_head(path, "program", kExecHead);
    if (!head) {
      if (script.empty()) return head.error();
      return sys_error(fmt::format("cannot read {}", name(path)), head.error().sys_errno);
    }
    std::optional<Shebang> line = parse_shebang(head->text.substr(0, kExecHead));
    if (!line) return Target{path, name(path)};
    if (scripts == kMaxScripts) {
      return error(fmt::format("{}: more than {} #! scripts in a row; baton follows no more",
                               name(path), kMaxScripts));
    }
    const std::string here = name(path);  // the script whose line this is
    if (line->interpreter.empty()) {
      return error(fmt::format("{} has a #! line that names no interpreter", here));
    }
    if (script.empty()) {
      script = path;
    } else {
      through.push_back(path);
    }
    // The kernel opens the interpreter as named: no PATH search, and a
    // name without '/' is relative to the working directory.
    std::string interpreter = line->interpreter;
    std::string named =
        interpreter.find('/') == std::string::npos ? "./" + interpreter : interpreter;
    if (find_executable(named).empty()) {
      return error(fmt::format("cannot find {}, the #! interpreter of {}", interpreter, here));
    }
    path = interpreter;
    if (fs::path(interpreter).filename() != "env" || line->argument.empty()) continue;
    // env runs the program its argument names, found in PATH.
    std::string command = env_command(line->argument);
    if (command.empty()) {
      return error(fmt::format("cannot tell which program {} runs for the #! line of {}",
                               interpreter, here));
    }
    std::string found = find_executable(command);
    if (found.empty()) {
      return error(fmt::format("cannot find {}, the program {} runs for the #! line of {}", command,
                               interpreter, here));
    }
    through.push_back(interpreter);
    path = found;
  }
}

}  // namespace

std::string find_executable(const std::string& command) {
  const char* path = std::getenv("PATH");
  return find_executable(command, path ? path : "/usr/local/bin:/usr/bin:/bin");
}

std::string find_executable(const std::string& command, const std::string& dirs) {
  if (command.find('/') != std::string::npos) {
    return is_file(command) && access(command.c_str(), X_OK) == 0 ? command : "";
  }
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

Status check_script_interpreter(const std::string& path) {
  auto head = read_file_head(path, "program", kExecHead);
  if (!head) return {};  // exec reports it as it is
  std::optional<Shebang> line = parse_shebang(head->text.substr(0, kExecHead));
  if (!line || line->interpreter.empty()) return {};
  const std::string& interpreter = line->interpreter;
  std::string named = interpreter.find('/') == std::string::npos ? "./" + interpreter : interpreter;
  if (!find_executable(named).empty()) return {};
  return error(fmt::format(
      "command {}: its #! interpreter {} is not an executable file, so it cannot be executed", path,
      interpreter));
}

Status check_shim_target(const std::string& command) {
  std::string path = find_executable(command);
  if (path.empty()) return error(fmt::format("shim: cannot find the command {}", command));
  auto target = follow_scripts(path);
  if (!target) return error(fmt::format("shim: {}", target.error().message));
  const std::string& subject = target->subject;
  struct stat st;
  if (stat(target->path.c_str(), &st) != 0) {
    return sys_error(fmt::format("shim: cannot stat {}", subject));
  }
  if (st.st_mode & (S_ISUID | S_ISGID)) {
    return error(
        fmt::format("shim: {} is setuid/setgid: the dynamic loader ignores LD_PRELOAD "
                    "for it, so the shim cannot hand it baton's sockets",
                    subject));
  }
  auto facts = inspect_elf(target->path, subject);
  if (!facts) return error(fmt::format("shim: {}", facts.error().message));
  if (facts->go) {
    return error(
        fmt::format("shim: {} is a Go program: it makes system calls directly, so the "
                    "shim cannot reach it (Go programs can use LISTEN_FDS natively)",
                    subject));
  }
  if (!facts->dynamic) {
    return error(
        fmt::format("shim: {} is statically linked: LD_PRELOAD cannot reach it, so the "
                    "shim cannot hand it baton's sockets",
                    subject));
  }
  return {};
}

}  // namespace baton
