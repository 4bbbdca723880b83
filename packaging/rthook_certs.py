# PyInstaller runtime hook for the single-file `hookd` binary (see hookd.spec): runs in the
# frozen interpreter before hookd itself.
#
# The binary carries the build machine's libssl, which looks for the system's trusted CA
# certificates where that machine keeps them (on Debian and Ubuntu, /usr/lib/ssl ->
# /etc/ssl/certs). On a distribution that keeps them elsewhere (Fedora/RHEL, openSUSE,
# Alpine) TLS verification would then find no CA at all and every HTTPS delivery fail.
# So when neither SSL_CERT_FILE nor SSL_CERT_DIR is set and the compiled-in locations do
# not exist, point SSL_CERT_FILE at the first CA bundle found in the usual places.

import os


def _point_at_system_bundle() -> None:
    if "SSL_CERT_FILE" in os.environ or "SSL_CERT_DIR" in os.environ:
        return
    import _ssl

    _, cafile, _, capath = _ssl.get_default_verify_paths()
    if os.path.isfile(cafile) or os.path.isdir(capath):
        return
    for bundle in (
        "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # Fedora, RHEL 7+
        "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
        "/etc/ssl/ca-bundle.pem",  # openSUSE
        "/etc/ssl/cert.pem",  # Alpine
    ):
        if os.path.isfile(bundle):
            os.environ["SSL_CERT_FILE"] = bundle
            return


_point_at_system_bundle()
