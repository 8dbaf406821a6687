"""livelab: boot Fedora CoreOS and Flatcar live images under QEMU and check them."""

__version__ = "0.1.0"
