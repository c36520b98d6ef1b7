//! The test app as a library: the binary and `cutover testapp` (hidden) share it.
