// kernel.h — the one place for kernel constants and syscall numbers that older
// C library headers lack. Every definition is guarded so a newer glibc wins.
// Values are from the kernel's uapi headers (include/uapi/linux/memfd.h,
// include/uapi/linux/fcntl.h, include/uapi/asm-generic/mman-common.h,
// include/uapi/asm-generic/unistd.h and arch/x86/entry/syscalls/syscall_64.tbl).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/memfd.h>

// memfd_create(2) flags
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 0x0001U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x0002U
#endif
#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x0004U
#endif
#ifndef MFD_NOEXEC_SEAL  // Linux 6.3
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC  // Linux 6.3
#define MFD_EXEC 0x0010U
#endif

// memfd_create(2): most bytes in a name, excluding the NUL. The kernel's
// MFD_NAME_MAX_LEN (mm/memfd.c: NAME_MAX - strlen("memfd:")); longer is EINVAL.
#define MEMSEAL_MFD_NAME_MAX 249

// fcntl(2) file seals
#ifndef F_LINUX_SPECIFIC_BASE
#define F_LINUX_SPECIFIC_BASE 1024
#endif
#ifndef F_ADD_SEALS  // Linux 3.17
#define F_ADD_SEALS (F_LINUX_SPECIFIC_BASE + 9)
#endif
#ifndef F_GET_SEALS
#define F_GET_SEALS (F_LINUX_SPECIFIC_BASE + 10)
#endif
#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#endif
#ifndef F_SEAL_SHRINK
#define F_SEAL_SHRINK 0x0002
#endif
#ifndef F_SEAL_GROW
#define F_SEAL_GROW 0x0004
#endif
#ifndef F_SEAL_WRITE
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_FUTURE_WRITE  // Linux 5.1
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC  // Linux 6.3
#define F_SEAL_EXEC 0x0020
#endif

// madvise(2) advice
#ifndef MADV_DONTDUMP
#define MADV_DONTDUMP 16
#endif
#ifndef MADV_DODUMP
#define MADV_DODUMP 17
#endif
#ifndef MADV_WIPEONFORK  // Linux 4.14
#define MADV_WIPEONFORK 18
#endif
#ifndef MADV_KEEPONFORK
#define MADV_KEEPONFORK 19
#endif
#ifndef MADV_COLD  // Linux 5.4
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_READ  // Linux 5.14
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

// madvise(2) values that take physical pages out of service machine-wide
// (memory-failure testing); the TypeScript layer refuses them.
#ifndef MADV_HWPOISON  // Linux 2.6.32
#define MADV_HWPOISON 100
#endif
#ifndef MADV_SOFT_OFFLINE  // Linux 2.6.33
#define MADV_SOFT_OFFLINE 101
#endif

// Every seal bit this version knows (fcntl(2)); other bits get an "unknown seal" hint.
#define MEMSEAL_KNOWN_SEALS \
  (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC)

// Syscall numbers. memfd_secret and mseal have no glibc 2.36 wrappers; both are
// called through syscall(2). x86_64 and aarch64 (asm-generic table) share the
// numbers; other architectures get -ENOSYS at run time rather than a guess.
#if defined(__x86_64__) || defined(__aarch64__)
#ifndef SYS_memfd_secret  // Linux 5.14
#define SYS_memfd_secret 447
#endif
#ifndef SYS_mseal  // Linux 6.10, 64-bit only
#define SYS_mseal 462
#endif
#endif

// unix(7): most descriptors one SCM_RIGHTS message may carry
// (include/net/scm.h, not exported to userspace), and the sun_path size.
#ifndef O_PATH  // Linux 2.6.39: a descriptor that names a file and grants no access to it
#define O_PATH 010000000
#endif

#ifndef SCM_MAX_FD
#define SCM_MAX_FD 253
#endif
#ifndef UNIX_PATH_MAX
#define UNIX_PATH_MAX 108
#endif
