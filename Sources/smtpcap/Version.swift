/// The release, as `smtpcap --version` prints it; the Makefile's `deb` target reads it here.
let smtpcapVersion = "2.0.0"
