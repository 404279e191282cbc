"""Test images built without a container engine.

Everything here writes OCI image layouts (image-spec v1.1 "oci-layout" directories)
with umoci, plus hand-written OCI indexes for multi-arch images. Every image gets
random content, so every image (layer, config and manifest digest) is unique and no
test can be satisfied by blobs another test left in the registry.

Layout references use skopeo's transport syntax: `oci:<dir>:<tag>`.
"""
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

BUSYBOX = "/bin/busybox"  # from busybox-static


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _run(*cmd):
    p = subprocess.run(list(cmd), capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


def write_random_file(path, size: int):
    """`size` bytes from os.urandom (incompressible), written in 1 MiB pieces."""
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n


@dataclass
class Image:
    layout: str  # OCI layout directory
    tag: str  # ref.name inside the layout
    manifest_digest: str  # sha256 of the exact manifest bytes in the layout
    config_digest: str
    layer_digests: list
    architecture: str = "amd64"
    os: str = "linux"
    random_file: str = ""  # path inside the image of the random payload
    random_digest: str = ""  # sha256 of that payload

    @property
    def ref(self):
        """skopeo/podman/buildah source reference."""
        return f"oci:{self.layout}:{self.tag}"

    @property
    def manifest_bytes(self) -> bytes:
        return read_blob(self.layout, self.manifest_digest)

    @property
    def manifest(self) -> dict:
        return json.loads(self.manifest_bytes)


@dataclass
class MultiArch:
    layout: str
    tag: str
    index_digest: str
    children: list = field(default_factory=list)  # [Image]

    @property
    def ref(self):
        return f"oci:{self.layout}:{self.tag}"

    @property
    def index_bytes(self) -> bytes:
        return read_blob(self.layout, self.index_digest)


# --- layout access -------------------------------------------------------------------------

def blob_path(layout, digest) -> str:
    algo, hexd = digest.split(":", 1)
    return os.path.join(layout, "blobs", algo, hexd)


def read_blob(layout, digest) -> bytes:
    data = open(blob_path(layout, digest), "rb").read()
    assert sha256_digest(data) == digest, f"blob {digest} in {layout} is corrupt"
    return data


def write_blob(layout, data: bytes) -> str:
    d = sha256_digest(data)
    p = blob_path(layout, d)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
    return d


def read_index(layout) -> dict:
    with open(os.path.join(layout, "index.json"), "rb") as f:
        return json.load(f)


def descriptor(layout, tag) -> dict:
    """The index.json descriptor tagged `tag` (exactly one must exist)."""
    found = [m for m in read_index(layout).get("manifests", [])
             if (m.get("annotations") or {}).get(REF_NAME) == tag]
    assert len(found) == 1, f"{len(found)} descriptors tagged {tag!r} in {layout}/index.json"
    return found[0]


def manifest_digest(layout, tag) -> str:
    """Digest of the manifest (or index) tagged `tag`: sha256 of its exact bytes."""
    desc = descriptor(layout, tag)
    data = open(blob_path(layout, desc["digest"]), "rb").read()
    digest = sha256_digest(data)
    assert digest == desc["digest"] and len(data) == desc["size"], \
        f"index.json descriptor {desc} does not match blob bytes ({digest}, {len(data)} bytes)"
    return digest


def manifest_bytes(layout, tag) -> bytes:
    return read_blob(layout, manifest_digest(layout, tag))


def add_ref(layout, desc: dict, tag: str):
    """Add (or replace) a tagged descriptor in the layout's index.json."""
    idx = read_index(layout)
    idx["manifests"] = [m for m in idx.get("manifests", [])
                        if (m.get("annotations") or {}).get(REF_NAME) != tag]
    desc = dict(desc)
    desc["annotations"] = dict(desc.get("annotations") or {}, **{REF_NAME: tag})
    idx["manifests"].append(desc)
    tmp = os.path.join(layout, "index.json.tmp")
    with open(tmp, "w") as f:
        json.dump(idx, f)
    os.replace(tmp, os.path.join(layout, "index.json"))


# --- builders ------------------------------------------------------------------------------

def init_layout(layout):
    if not os.path.exists(os.path.join(layout, "oci-layout")):
        _run("umoci", "init", "--layout", layout)
    return layout


def build_image(layout, tag, *, arch="amd64", os_name="linux", random_size=64 * 1024,
                with_busybox=True, workdir=None) -> Image:
    """One single-layer image tagged `tag` in the OCI layout `layout` (created if needed).

    The layer holds `/data/random.bin` (`random_size` random bytes) and, unless
    `with_busybox=False`, a static busybox as /bin/sh. Returns the Image with digests
    read back from the layout.
    """
    init_layout(layout)
    workdir = workdir or os.path.join(os.path.dirname(os.path.abspath(layout)),
                                      f".rootfs-{os.path.basename(layout)}-{tag}")
    if os.path.exists(workdir):
        shutil.rmtree(workdir)
    os.makedirs(os.path.join(workdir, "data"))
    payload = os.path.join(workdir, "data", "random.bin")
    write_random_file(payload, random_size)
    payload_digest = file_digest(payload)
    if with_busybox:
        os.makedirs(os.path.join(workdir, "bin"))
        shutil.copy2(BUSYBOX, os.path.join(workdir, "bin", "busybox"))
        os.symlink("busybox", os.path.join(workdir, "bin", "sh"))
    ref = f"{layout}:{tag}"
    _run("umoci", "new", "--image", ref)
    _run("umoci", "insert", "--image", ref, workdir, "/")
    _run("umoci", "config", "--image", ref, "--architecture", arch, "--os", os_name,
         "--config.cmd", "/bin/sh", "--config.label", f"berth.test.tag={tag}")
    shutil.rmtree(workdir)

    mdigest = manifest_digest(layout, tag)
    m = json.loads(read_blob(layout, mdigest))
    assert len(m["layers"]) == 1, m
    cfg = json.loads(read_blob(layout, m["config"]["digest"]))
    assert (cfg["architecture"], cfg["os"]) == (arch, os_name), cfg
    return Image(layout=layout, tag=tag, manifest_digest=mdigest,
                 config_digest=m["config"]["digest"],
                 layer_digests=[l["digest"] for l in m["layers"]],
                 architecture=arch, os=os_name,
                 random_file="/data/random.bin", random_digest=payload_digest)


def build_multiarch(layout, tag, arches=("amd64", "arm64"), random_size=16 * 1024) -> MultiArch:
    """An OCI index tagged `tag` whose children are one fresh image per architecture.

    The children are also tagged `<tag>-<arch>` in the layout. The index is written by
    hand (image-spec 1.1 image index with platform objects).
    """
    init_layout(layout)
    children = [build_image(layout, f"{tag}-{a}", arch=a, random_size=random_size) for a in arches]
    index = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": [
            {
                "mediaType": MT_OCI_MANIFEST,
                "digest": c.manifest_digest,
                "size": len(c.manifest_bytes),
                "platform": {"architecture": c.architecture, "os": c.os},
            }
            for c in children
        ],
    }
    data = json.dumps(index, indent=2).encode()
    digest = write_blob(layout, data)
    add_ref(layout, {"mediaType": MT_OCI_INDEX, "digest": digest, "size": len(data)}, tag)
    assert manifest_digest(layout, tag) == digest
    return MultiArch(layout=layout, tag=tag, index_digest=digest, children=children)
