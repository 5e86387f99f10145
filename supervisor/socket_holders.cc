// Finding the processes that hold a socket, from /proc/PID/fd, and the
// sockets bound to an address, from sock_diag and /proc/net/unix.
#include "socket_holders.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "sock_diag.h"
#include "unique_fd.h"

namespace baton {
namespace {

constexpr size_t kCommandMax = 120;

UniqueFd open_dir_at(int dirfd, const char* name) {
  return UniqueFd(openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

/// Calls `f(name)` for each entry of the directory `dirfd` but "." and "..".
/// getdents64 into a stack buffer rather than opendir(): no allocation per
/// process scanned, and the fd stays owned by a UniqueFd. A read error (the
/// process exited: ENOENT) ends the listing.
template <class F>
void for_each_entry(int dirfd, F&& f) {
  alignas(dirent64) char buf[8192];
  for (;;) {
    ssize_t n = getdents64(dirfd, buf, sizeof buf);
    if (n <= 0) return;
    for (ssize_t off = 0; off < n;) {
      const auto* d = reinterpret_cast<const dirent64*>(buf + off);
      off += d->d_reclen;
      std::string_view name = d->d_name;
      if (name != "." && name != "..") f(d->d_name);
    }
  }
}

/// Reads up to `size` bytes of the file `name` under `dirfd`; -1 on error.
ssize_t read_at(int dirfd, const char* name, char* buf, size_t size) {
  UniqueFd fd(openat(dirfd, name, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return -1;
  size_t have = 0;
  while (have < size) {
    ssize_t n = read(fd.get(), buf + have, size - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(have);
}

template <class T>
bool parse_number(std::string_view text, T& value, int base = 10) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return !text.empty() && ec == std::errc() && end == text.data() + text.size();
}

/// The inode in a "socket:[INODE]" link, or 0 for any other link.
ino_t socket_link_inode(std::string_view link) {
  constexpr std::string_view kPrefix = "socket:[";
  if (!link.starts_with(kPrefix) || !link.ends_with(']')) return 0;
  link = link.substr(kPrefix.size(), link.size() - kPrefix.size() - 1);
  ino_t inode = 0;
  return parse_number(link, inode) ? inode : 0;
}

/// The sockets in `wanted` (sorted) that the process's fd table holds.
std::vector<ino_t> held_inodes(int pid_dir, const std::vector<ino_t>& wanted) {
  std::vector<ino_t> found;
  UniqueFd fd_dir = open_dir_at(pid_dir, "fd");  // EACCES, ENOENT: skip it
  if (!fd_dir.valid()) return found;
  for_each_entry(fd_dir.get(), [&](const char* name) {
    char link[64];
    ssize_t n = readlinkat(fd_dir.get(), name, link, sizeof link);
    if (n <= 0 || static_cast<size_t>(n) == sizeof link) return;
    ino_t inode = socket_link_inode(std::string_view(link, static_cast<size_t>(n)));
    if (inode == 0 || !std::binary_search(wanted.begin(), wanted.end(), inode)) return;
    if (std::find(found.begin(), found.end(), inode) == found.end()) found.push_back(inode);
  });
  std::sort(found.begin(), found.end());
  return found;
}

/// The command line as one printable line of at most kCommandMax bytes
/// (cut at a UTF-8 character boundary) plus "...".
std::string printable_command(std::string_view raw) {
  while (!raw.empty() && (raw.back() == '\0' || raw.back() == ' ')) raw.remove_suffix(1);
  bool cut = raw.size() > kCommandMax;
  if (cut) {
    size_t end = kCommandMax;
    while (end > 0 && (static_cast<unsigned char>(raw[end]) & 0xC0) == 0x80) --end;
    raw = raw.substr(0, end);
  }
  std::string text(raw);
  for (char& c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) c = byte == 0 ? ' ' : '?';
  }
  if (cut) text += "...";
  return text;
}

/// cmdline, or "[comm]" for a process without one. Read only for holders:
/// reading another process's cmdline takes its mmap lock and can stall.
std::string read_command(int pid_dir) {
  char buf[kCommandMax + 2];  // one more byte than fits, plus the final NUL
  ssize_t n = read_at(pid_dir, "cmdline", buf, sizeof buf);
  std::string command = printable_command(std::string_view(buf, n > 0 ? size_t(n) : 0));
  if (!command.empty()) return command;
  n = read_at(pid_dir, "comm", buf, sizeof buf);
  std::string_view comm(buf, n > 0 ? size_t(n) : 0);
  if (comm.ends_with('\n')) comm.remove_suffix(1);
  return "[" + printable_command(comm) + "]";
}

/// The process group from /proc/PID/stat; -1 if it cannot be read. The
/// command name in parentheses may contain spaces and ')', so the fields
/// are counted from the last ')'.
pid_t read_pgid(int pid_dir) {
  char buf[512];
  ssize_t n = read_at(pid_dir, "stat", buf, sizeof buf - 1);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');
  char state = 0;
  int ppid = 0, pgrp = -1;
  if (!close || std::sscanf(close + 1, " %c %d %d", &state, &ppid, &pgrp) != 3) return -1;
  return pgrp;
}

/// Adds process `pid` to `out` if it holds any of `wanted`. Everything is
/// read through one /proc/PID directory fd: if the process exits and its pid
/// is reused meanwhile, the reads fail instead of describing the new process.
void scan_process(int proc_dir, const char* name, pid_t pid, const std::vector<ino_t>& wanted,
                  std::vector<SocketHolder>& out) {
  UniqueFd pid_dir = open_dir_at(proc_dir, name);
  if (!pid_dir.valid()) return;
  std::vector<ino_t> held = held_inodes(pid_dir.get(), wanted);
  if (held.empty()) return;
  out.push_back({pid, read_pgid(pid_dir.get()), read_command(pid_dir.get()), std::move(held)});
}

/// Calls `f(line)` for each line of `path` (without its '\n'), streaming the
/// file through a fixed buffer; a line longer than the buffer is skipped.
template <class F>
void for_each_line(const char* path, F&& f) {
  UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return;  // e.g. no tcp6 when IPv6 is disabled
  char buf[4096];
  size_t have = 0;
  bool skipping = false;
  for (;;) {
    ssize_t n = read(fd.get(), buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    have += static_cast<size_t>(n);
    size_t start = 0;
    while (const void* nl = std::memchr(buf + start, '\n', have - start)) {
      size_t end = static_cast<size_t>(static_cast<const char*>(nl) - buf);
      if (!skipping) f(std::string_view(buf + start, end - start));
      skipping = false;
      start = end + 1;
    }
    std::memmove(buf, buf + start, have - start);
    have -= start;
    if (have == sizeof buf) skipping = true, have = 0;
  }
  if (have > 0 && !skipping) f(std::string_view(buf, have));
}

/// Splits off the first N fields of `line` (separated by runs of spaces);
/// `end` is set to where the last of them ends.
template <size_t N>
bool split_fields(std::string_view line, std::array<std::string_view, N>& fields, size_t& end) {
  size_t pos = 0;
  for (std::string_view& field : fields) {
    pos = line.find_first_not_of(' ', pos);
    if (pos == std::string_view::npos) return false;
    size_t stop = std::min(line.find(' ', pos), line.size());
    field = line.substr(pos, stop - pos);
    pos = stop;
  }
  end = pos;
  return true;
}

/// An IP address in network byte order; a v4-mapped v6 address is kept as v4.
struct IpAddress {
  int family = 0;
  std::array<unsigned char, 16> bytes{};

  bool operator==(const IpAddress&) const = default;
  bool is_wildcard() const {
    return std::all_of(bytes.begin(), bytes.end(), [](unsigned char b) { return b == 0; });
  }
  void unmap_v4() {
    static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family != AF_INET6 || std::memcmp(bytes.data(), kMapped, 12) != 0) return;
    family = AF_INET;
    std::memmove(bytes.data(), bytes.data() + 12, 4);
    std::fill(bytes.begin() + 4, bytes.end(), 0);
  }
};

/// Whether a socket bound to `have` (on the same port) may stop a bind to
/// `want`. A v6 socket on "::" may be dual-stack.
bool addresses_conflict(const IpAddress& want, bool want_dual_stack, const IpAddress& have) {
  if (want.family == have.family) return want == have || want.is_wildcard() || have.is_wildcard();
  if (want.family == AF_INET) return have.is_wildcard();
  return want_dual_stack;
}

/// Adds the `family` sockets of `spec`'s kind (tcp: listeners; udp: any)
/// that `spec` conflicts with.
void add_inet_sockets(int family, const SocketSpec& spec, std::vector<ino_t>& out) {
  IpAddress want;
  want.family = spec.family;
  if (inet_pton(spec.family, spec.host.c_str(), want.bytes.data()) != 1) return;
  want.unmap_v4();
  bool dual_stack = want.family == AF_INET6 && want.is_wildcard() && !spec.v6only;
  const bool tcp = spec.kind == SocketKind::kTcp;
  for_each_inet_socket(family, tcp ? IPPROTO_TCP : IPPROTO_UDP, tcp ? 1U << TCP_LISTEN : ~0U,
                       [&](const inet_diag_msg& m) {
                         if (ntohs(m.id.idiag_sport) != spec.port || m.idiag_inode == 0) return;
                         IpAddress local;
                         local.family = m.idiag_family;
                         std::memcpy(local.bytes.data(), m.id.idiag_src,
                                     m.idiag_family == AF_INET ? 4 : 16);
                         local.unmap_v4();
                         if (addresses_conflict(want, dual_stack, local)) {
                           out.push_back(m.idiag_inode);
                         }
                       });
}

/// Adds the unix sockets bound to the path or abstract name of `spec`.
void add_unix_sockets(const SocketSpec& spec, std::vector<ino_t>& out) {
  std::string want = spec.abstract ? "@" + spec.path : spec.path;
  for_each_line("/proc/net/unix", [&](std::string_view line) {
    // Num RefCount Protocol Flags Type St Inode Path; the path is printed
    // raw after one space, so it may itself contain spaces.
    std::array<std::string_view, 7> f;
    size_t end = 0;
    ino_t inode = 0;
    if (!split_fields(line, f, end) || !parse_number(f[6], inode) || end >= line.size()) return;
    // A connection accepted from a listener shows the listener's path too,
    // but does not hold the address.
    bool stream = f[4] == "0001" || f[4] == "0005";  // SOCK_STREAM, SOCK_SEQPACKET
    if (stream && f[5] == "03") return;              // SS_CONNECTED
    if (line.substr(end + 1) == want) out.push_back(inode);
  });
}

}  // namespace

Result<ino_t> socket_inode(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return sys_error(fmt::format("cannot stat fd {}", fd));
  if (!S_ISSOCK(st.st_mode)) return sys_error(fmt::format("fd {}", fd), ENOTSOCK);
  return st.st_ino;
}

std::vector<SocketHolder> find_socket_holders(const std::vector<ino_t>& inodes,
                                              const std::vector<pid_t>& exclude) {
  std::vector<SocketHolder> holders;
  if (inodes.empty()) return holders;
  std::vector<ino_t> wanted = inodes;
  std::sort(wanted.begin(), wanted.end());
  UniqueFd proc(open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!proc.valid()) return holders;
  for_each_entry(proc.get(), [&](const char* name) {
    pid_t pid = 0;
    if (!parse_number(std::string_view(name), pid) || pid <= 0) return;
    if (std::find(exclude.begin(), exclude.end(), pid) != exclude.end()) return;
    scan_process(proc.get(), name, pid, wanted, holders);
  });
  std::sort(holders.begin(), holders.end(),
            [](const SocketHolder& a, const SocketHolder& b) { return a.pid < b.pid; });
  return holders;
}

std::string describe_holders(const std::vector<SocketHolder>& holders) {
  std::string text;
  for (const SocketHolder& h : holders) {
    if (!text.empty()) text += ", ";
    text += fmt::format("pid {} ({})", h.pid, h.command);
  }
  return text;
}

std::vector<ino_t> inodes_bound_to(const SocketSpec& spec) {
  std::vector<ino_t> inodes;
  if (spec.kind == SocketKind::kUnix) {
    add_unix_sockets(spec, inodes);
  } else if (spec.port != 0) {
    add_inet_sockets(AF_INET, spec, inodes);
    add_inet_sockets(AF_INET6, spec, inodes);
  }
  std::sort(inodes.begin(), inodes.end());
  inodes.erase(std::unique(inodes.begin(), inodes.end()), inodes.end());
  return inodes;
}

}  // namespace baton
