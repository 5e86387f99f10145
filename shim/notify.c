/* sd_notify-style datagrams from the shim to baton: newline-separated
 * KEY=VALUE lines sent with one sendto on a socket made in the constructor.
 * Everything here is async-signal-safe (the drain handler sends STOPPING=1). */
#include <errno.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

#include "shim.h"

void shim_msg_str(struct shim_msg* m, const char* s) {
  size_t n = strlen(s);
  if (n > sizeof m->text - m->len) n = sizeof m->text - m->len;
  memcpy(m->text + m->len, s, n);
  m->len += n;
}

void shim_msg_uint(struct shim_msg* m, unsigned long v) {
  char digits[24];
  size_t i = sizeof digits;
  digits[--i] = '\0';
  do {
    digits[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  shim_msg_str(m, digits + i);
}

/* Reads NOTIFY_SOCKET: an absolute path, or "@name" for an abstract address.
 * Returns 0 when it is usable (shim.notify_addr set), -1 otherwise. */
int shim_notify_parse(const char* value) {
  if (!value || (value[0] != '/' && value[0] != '@')) return -1;
  struct sockaddr_un* un = (struct sockaddr_un*)&shim.notify_addr;
  size_t n = strlen(value);
  if (n < 2 || n >= sizeof un->sun_path) return -1;
  memset(un, 0, sizeof *un);
  un->sun_family = AF_UNIX;
  memcpy(un->sun_path, value, n);
  if (value[0] == '@') un->sun_path[0] = '\0';
  /* Abstract names are exactly n bytes long; paths carry their NUL. */
  shim.notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (value[0] == '/'));
  return 0;
}

/* Sends one datagram. A full receive queue at baton is waited out briefly
 * (sleeping, never blocking in sendto), then the message is dropped. */
void shim_notify_send(const struct shim_msg* m) {
  if (shim.notify_fd < 0) return;
  int saved = errno;
  for (int attempt = 0; attempt < 200; ++attempt) {
    ssize_t r = sendto(shim.notify_fd, m->text, m->len, MSG_DONTWAIT | MSG_NOSIGNAL,
                       (const struct sockaddr*)&shim.notify_addr, shim.notify_len);
    if (r >= 0 || (errno != EAGAIN && errno != EINTR)) break;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
    nanosleep(&pause, NULL);
  }
  errno = saved;
}
