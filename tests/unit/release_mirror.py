"""A small mirror with a release history, in the real layouts: FCOS testing's release index, stream JSON and
three releases (the middle one without its ISO), and Flatcar alpha's three release directories (the middle one
without its PXE image) with the board directory's page.  Shared by the release-list and bisect tests."""
import json
from pathlib import Path

FC = "https://builds.coreos.fedoraproject.org/"
FCOS_TESTING = ["42.20250707.2.0", "42.20250721.2.0", "42.20250804.2.0"]
FLATCAR_ALPHA = ["4012.0.0", "4054.0.0", "4081.0.0"]


def standin_mirror(root: Path, page: bool = True) -> Path:
    """A small mirror: FCOS testing's index and three releases (the middle one without its ISO), and Flatcar
    alpha's release directories (with the board directory's page when ``page``)."""
    streams = root / "fcos/prod/streams/testing"
    versions = FCOS_TESTING
    index = {"stream": "testing", "releases": [
        {"version": v, "metadata": f"{FC}prod/streams/testing/builds/{v}/release.json"} for v in versions]}
    streams.mkdir(parents=True)
    (streams / "releases.json").write_text(json.dumps(index))
    for v in versions:
        base = f"prod/streams/testing/builds/{v}/x86_64"
        arts = {}
        for kind, name in (("kernel", "k"), ("initramfs", "i"), ("rootfs", "r"), ("iso", "iso")):
            f = root / "fcos" / base / f"fedora-coreos-{v}-{name}"
            f.parent.mkdir(parents=True, exist_ok=True)
            if not (kind == "iso" and v == versions[1]):
                f.write_bytes(b"x")
            arts[kind] = {"location": f"{FC}{base}/{f.name}", "sha256": "0" * 64}
        formats = {"pxe": {k: arts[k] for k in ("kernel", "initramfs", "rootfs")}, "iso": {"disk": arts["iso"]}}
        media = {"metal": {"artifacts": formats}}
        (streams / "builds" / v / "release.json").write_text(json.dumps({
            "release": v, "stream": "testing", "architectures": {"x86_64": {"media": media}}}))
    (root / "fcos/streams").mkdir(parents=True)
    (root / "fcos/streams/testing.json").write_text(json.dumps({"stream": "testing", "architectures": {"x86_64": {
        "artifacts": {"metal": {"release": versions[-1], "formats": formats}}}}}))
    board = root / "flatcar/alpha/amd64-usr"
    for v in ("4012.0.0", "4081.0.0", "4054.0.0", "current"):
        (board / v).mkdir(parents=True)
        for name in ("flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz"):
            if not (v == FLATCAR_ALPHA[1] and name.endswith(".gz")):
                (board / v / name).write_bytes(b"x")
    if page:
        (board / "index.html").write_text(
            "".join(f'<a href="./{v}/">{v}/</a>\n' for v in ("4012.0.0", "4054.0.0", "4081.0.0", "current")))
    return root
