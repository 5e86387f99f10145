# The .deb (`cpack -G DEB`, which scripts/package runs): what the install
# rules put under CMAKE_INSTALL_PREFIX, as package `baton`. The install
# prefix is the package's too: baton looks for its shim, and the units run
# baton, at paths fixed when it was configured. Its Depends: come from
# dpkg-shlibdeps (dpkg-dev) on the binaries.

set(BATON_PACKAGE_MAINTAINER "baton maintainers <baton@localhost>"
    CACHE STRING "The .deb's Maintainer: field, \"Name <address>\"")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME baton)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${BATON_PACKAGE_MAINTAINER})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "zero-downtime socket handoff supervisor")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)

find_program(DPKG dpkg)
if(DPKG)
  execute_process(COMMAND ${DPKG} --print-architecture
                  OUTPUT_VARIABLE CPACK_DEBIAN_PACKAGE_ARCHITECTURE OUTPUT_STRIP_TRAILING_WHITESPACE
                  COMMAND_ERROR_IS_FATAL ANY)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # baton_VERSION_ARCH.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${BATON_PACKAGE_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS bash-completion)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/cmake/deb/postinst ${PROJECT_SOURCE_DIR}/cmake/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# The extended description: cpack puts the summary above it.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "baton binds a service's listening sockets itself and keeps them open for as
long as it runs, starts the app with them as inherited fds (systemd's
LISTEN_FDS protocol) and waits for its READY=1 (sd_notify) or its probes.
Clients that connect while the app restarts wait in the backlog instead of
being refused, and `baton reload` swaps in a new version only once it is
ready, rolling back when it never is.
.
This package holds the baton command, its LD_PRELOAD shim for programs that
bind their own port, the baton@.service and baton@.socket units, the man
page, the bash completion and an example app with its config.")

include(CPack)
