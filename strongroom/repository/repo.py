"""The repository: opening it with a key, and reading and writing its content-addressed files."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strongroom import audit
from strongroom.clock import ClockReading, warn_if_skewed
from strongroom.crypto.aead import SealError
from strongroom.crypto.epochs import (
    BASE_KEY,
    KEYRING_PREFIX,
    BaseKeys,
    Keyring,
    KeyringObject,
    load_keyring,
    new_base_object,
    new_epoch_object,
)
from strongroom.crypto.master import MasterKey
from strongroom.crypto.slots import (
    KeySlot,
    SlotDamaged,
    SlotType,
    make_slot,
    read_keyfile,
    unwrap,
)
from strongroom.crypto.unlock import Unlocker, unlock, unlockers_from_env
from strongroom.errors import (
    ConfigError,
    IntegrityError,
    RepositoryNotFound,
    SnapshotNotFound,
    StorageError,
    WrongKey,
)
from strongroom.repository.format import (
    AAD_INDEX,
    AAD_SNAPSHOT,
    CHUNK_AVG,
    CHUNK_MAX,
    CHUNK_MIN,
    FORMAT_VERSION,
    PACK_TARGET,
    READABLE_VERSIONS,
    blob_id,
    content_name,
    open_blob,
    open_document,
    pack_key,
    seal_document,
)
from strongroom.repository.index import BlobLocation, Index
from strongroom.repository.model import Node, Snapshot
from strongroom.repository.tree import decode_tree
from strongroom.storage.base import Backend, MissingObject
from strongroom.storage.registry import open_backend

if TYPE_CHECKING:
    from strongroom.repository.reader import SnapshotReader
    from strongroom.repository.writer import SnapshotWriter

log = logging.getLogger("strongroom")
READ_WINDOW = 4 * 1024 * 1024
TREE_CACHE_NODES = 200_000  # decoded tree nodes kept for readers (about 100 MB)
RELIST_ATTEMPTS = 5  # listings of index/ while files vanish under a prune's rewrite


class _Missing(Exception):  # noqa: N818 (internal signal, never leaves this module)
    """A blob not found where the index said (carries the error to raise if it stays so)."""

    def __init__(self, error: IntegrityError) -> None:
        self.error = error


class Credentials:
    """A password or key file, kept out of reprs and logs."""

    def __init__(self, password: str | None = None, keyfile: Path | None = None) -> None:
        self._password = password
        self.keyfile = Path(keyfile) if keyfile else None

    def __repr__(self) -> str:
        return f"Credentials(password={'***' if self._password else None}, keyfile={self.keyfile})"

    def secrets(self, required: bool = True) -> list[tuple[SlotType, bytes]]:
        out: list[tuple[SlotType, bytes]] = []
        if self.keyfile:
            out.append(("keyfile", read_keyfile(self.keyfile)))
        if self._password is not None:
            out.append(("password", self._password.encode()))
        if not out and required:
            raise ConfigError("no password or key file given (set STRONGROOM_PASSWORD, "
                              "--password-file or --key-file)")
        return out

    @classmethod
    def from_env(cls) -> Credentials:
        password = os.environ.get("STRONGROOM_PASSWORD")
        pw_file = os.environ.get("STRONGROOM_PASSWORD_FILE")
        if password is None and pw_file:
            password = read_password_file(Path(pw_file))
        keyfile = os.environ.get("STRONGROOM_KEYFILE")
        return cls(password, Path(keyfile) if keyfile else None)


def read_password_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"password file {path} is not UTF-8 text") from None


class Repository:
    """An opened repository: its backend, configuration, master key, index and snapshots."""

    def __init__(self, backend: Backend, config: dict[str, Any], master: MasterKey,
                 slot_id: str, base: BaseKeys | None = None, keyring: Keyring | None = None
                 ) -> None:
        self.backend = backend
        self.config = config
        self.id: str = config["id"]
        self.master = master
        self.slot_id = slot_id
        self.format_version = int(config.get("version", 1))
        if base is None or keyring is None:  # format 1: every key derived from the master
            base, keyring = BaseKeys.of_format1(master), Keyring.format1(master)
        self.base = base
        # The keyring seals under the current epoch and opens every epoch it holds; the name
        # ``aead`` is kept for the codec's callers (writer, packs, prune, copy).
        self.aead: Keyring = keyring
        self.keyring = keyring
        self.id_key = base.id_key
        self.chunker_seed = base.chunker_seed
        self._keyring_listing: list[tuple[str, int]] = []
        self.pack_target = int(config.get("pack_target", PACK_TARGET))
        self._index: Index | None = None
        self.index_errors: list[str] = []
        self.damaged_snapshots: dict[str, str] = {}
        self._snapshot_cache: dict[str, Snapshot] = {}
        self._tree_cache: OrderedDict[bytes, list[Node]] = OrderedDict()
        self._tree_cache_nodes = 0
        self._windows: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()

    # ---- opening -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.backend.url

    @classmethod
    def init(cls, url: str, password: str | None = None, keyfile: Path | None = None,
             options: dict[str, Any] | None = None, pack_target: int = PACK_TARGET,
             format_version: int = FORMAT_VERSION) -> Repository:
        """Create a new repository with a random master key, one key slot and (format 2) a
        keyring holding the base keys and data-key epoch 1."""
        backend = open_backend(url, options)
        backend.prepare()
        if backend.exists("config"):
            raise ConfigError(f"a repository already exists at {url}")
        creds = Credentials(password, keyfile)
        slot_type, secret = creds.secrets()[0]
        if slot_type == "password" and not secret:  # e.g. a secret fetch that wrote nothing
            raise ConfigError("the password is empty; refusing to create a repository with it")
        master = MasterKey.generate()
        config: dict[str, Any] = {
            "format": "strongroom", "version": format_version, "id": secrets.token_hex(16),
            "created": datetime.now(UTC).isoformat(),
            "chunker": {"algorithm": "fastcdc2020", "min": CHUNK_MIN, "avg": CHUNK_AVG,
                        "max": CHUNK_MAX, "normalization": 1},
            "compression": "zstd", "aead": "aes-256-gcm", "blob_id": "blake3-keyed",
            "pack_target": pack_target,
        }
        base: BaseKeys | None = None
        keyring: Keyring | None = None
        if format_version >= 2:  # keyring before config: a config always finds its keyring
            base = BaseKeys.generate()
            objects = [new_base_object(master, config["id"], base),
                       new_epoch_object(1, master, config["id"], os.urandom(32))]
            # Create-if-absent from the first object on: a racing init that claimed
            # keyring/base first wins, and this one stops before overwriting anything of it.
            for i, obj in enumerate(objects):
                if not backend.put_if_absent(obj.key, obj.dump()):
                    for done in objects[:i]:
                        backend.delete(done.key)
                    raise ConfigError(f"a repository is being created at {url} by another init "
                                      f"({obj.key} exists, config not yet; if no init is "
                                      "running, delete keyring/ and retry)")
            keyring = load_keyring(objects, master, config["id"])[1]
        slot = make_slot(master, config["id"], slot_type, secret, label="initial")
        backend.put(f"keys/{slot.id}", slot.model_dump_json(indent=1).encode())
        config["mac"] = config_mac(config, master, base)
        raw = json.dumps(config, indent=1).encode()
        # Create-if-absent: of two inits at one URL exactly one writes the config; the other
        # takes its key slot back and fails. (A retried write that did land reads back ours.)
        if not backend.put_if_absent("config", raw) and _stored_config(backend) != raw:
            backend.delete(f"keys/{slot.id}")
            raise ConfigError(f"a repository already exists at {url} (another init created "
                              "it just now)")
        repo = cls(backend, config, master, slot.id, base, keyring)
        audit.write_record(repo, "init", {"url": url, "slot_type": slot_type}, "ok")
        return repo

    @classmethod
    def open(cls, url: str, password: str | None = None, keyfile: Path | None = None,
             options: dict[str, Any] | None = None, unlockers: Sequence[Unlocker] = ()
             ) -> Repository:
        """Open an existing repository with a password or key file, or with ``unlockers``
        (PKCS#11 token, KMS, escrow key: strongroom.crypto.unlock), tried after them."""
        backend = open_backend(url, options)
        try:
            raw = backend.get("config")
        except (IntegrityError, RepositoryNotFound):
            raise RepositoryNotFound(f"no repository at {url}") from None
        try:
            config = json.loads(raw)
            if not isinstance(config, dict) or config.get("format") != "strongroom" or \
                    not isinstance(config.get("id"), str):
                raise ValueError
        except ValueError:
            raise IntegrityError(f"config of {url} is damaged or not a strongroom repository"
                                 ) from None
        if config.get("version") not in READABLE_VERSIONS:
            raise ConfigError(f"repository format version {config.get('version')} is not "
                              f"supported (this build reads versions "
                              f"{', '.join(map(str, READABLE_VERSIONS))})")
        creds = Credentials(password, keyfile)
        wanted = creds.secrets(required=not unlockers)
        slots = list_slots(backend)
        damaged: list[str] = []
        mismatch: IntegrityError | None = None
        for slot in slots:
            for slot_type, secret in wanted:
                if slot.type != slot_type:
                    continue
                try:
                    master = unwrap(slot, config["id"], secret)
                except SlotDamaged as exc:
                    damaged.append(str(exc))
                    log.warning("%s; skipped", exc)
                    continue
                if master is None:
                    continue
                try:
                    return cls._verified(backend, config, master, slot.id, url)
                except IntegrityError as exc:  # a slot a losing concurrent init left a moment
                    mismatch = exc
        if mismatch is not None:
            raise mismatch
        if unlockers:
            master, slot = unlock(unlockers, slots, config["id"], url)
            return cls._verified(backend, config, master, slot.id, url)
        what = " or ".join(sorted({t for t, _ in wanted}))
        also = f" ({'; '.join(damaged)})" if damaged else ""
        raise WrongKey(f"wrong {what}: no key slot of {url} opens with it{also}")

    @classmethod
    def _verified(cls, backend: Backend, config: dict[str, Any], master: MasterKey,
                  slot_id: str, url: str) -> Repository:
        base: BaseKeys | None = None
        keyring: Keyring | None = None
        if int(config.get("version", 1)) >= 2:
            base, keyring = load_keyring(keyring_objects(backend), master, config["id"])
        if config.get("mac") != config_mac(config, master, base):
            raise IntegrityError(f"config of {url} has been altered (MAC mismatch)")
        try:
            warn_if_skewed(ClockReading.read(backend))
        except StorageError as exc:  # the first real request says what is wrong
            log.debug("storage clock not read: %s", exc)
        return cls(backend, config, master, slot_id, base, keyring)

    @classmethod
    def from_env(cls, url: str | None = None, options: dict[str, Any] | None = None
                 ) -> Repository:
        """Open the repository named by STRONGROOM_REPOSITORY with STRONGROOM_PASSWORD etc."""
        url = url or os.environ.get("STRONGROOM_REPOSITORY")
        if not url:
            raise ConfigError("no repository given (set STRONGROOM_REPOSITORY or --repo)")
        creds = Credentials.from_env()
        return cls.open(url, creds._password, creds.keyfile, options, unlockers_from_env())

    # ---- time ----------------------------------------------------------------------------
    def storage_now(self) -> datetime:
        """Now by the storage's clock (ages of what other hosts wrote are measured with it)."""
        return datetime.fromtimestamp(self.backend.clock(), UTC)

    def require_clock(self, operation: str) -> float:
        """ClockSkew (exit 19) if this host's clock and the storage's disagree beyond the
        tolerance: ``operation`` deletes, and must not judge ages with a wrong clock. Returns
        the storage's time as read."""
        reading = ClockReading.read(self.backend)
        reading.require_agreement(operation)
        return reading.storage

    # ---- index ---------------------------------------------------------------------------
    @property
    def index(self) -> Index:
        if self._index is None:
            self.reload_index()
        assert self._index is not None
        return self._index

    def reload_index(self) -> Index:
        """Read every index file again (after other writers or prune changed them).

        A file that vanishes between the listing and its read was superseded by a prune, which
        writes the replacement first: the listing is read again for files not seen yet."""
        self.refresh_keyring()  # a writer about to seal takes the newest epoch
        index = Index()
        errors: list[str] = []
        seen: set[str] = set()
        for _attempt in range(RELIST_ATTEMPTS):
            vanished = False
            for key, _size in self.backend.list("index/"):
                name = key.rsplit("/", 1)[-1]
                if name in seen:
                    continue
                seen.add(name)
                try:
                    index.add_document(name, self.load_index_file(name))
                except IntegrityError as exc:
                    if not self.backend.exists(key):
                        vanished = True  # superseded meanwhile: not damage
                        continue
                    errors.append(str(exc))
                    log.debug("%s", exc)
            if not vanished:
                break
        self._index, self.index_errors = index, errors
        return index

    def _index_after_miss(self, stale: Index) -> Index:
        """The index read again once after a blob was not found where ``stale`` said (a prune
        moved it), if index files were written since; threads missing at once share one
        reload. Packs ``stale`` dropped as missing stay dropped."""
        with self._reload_lock:
            if self._index is stale:
                listed = {key.rsplit("/", 1)[-1] for key, _ in self.backend.list("index/")}
                if listed - stale.files:  # only a new index file can say where a blob went
                    fresh = self.reload_index()
                    fresh.drop_packs(stale.dropped & set(fresh.packs))
        return self.index

    def load_index_file(self, name: str) -> dict[str, Any]:
        data = self.backend.get(f"index/{name}")
        if content_name(data) != name:
            raise IntegrityError(f"index file {name} is damaged (contents do not match its name)")
        try:
            return open_document(self.aead, data, AAD_INDEX)
        except (SealError, ValueError) as exc:
            raise IntegrityError(f"index file {name} is damaged ({exc})") from None

    def save_index(self, doc: dict[str, Any]) -> str:
        data = seal_document(self.aead, doc, AAD_INDEX)
        name = content_name(data)
        self.backend.put(f"index/{name}", data)
        self.index.add_document(name, doc)
        return name

    # ---- blobs ---------------------------------------------------------------------------
    def load_blob(self, bid: bytes, blob_type: str | None = None) -> bytes:
        """A blob's plaintext, decrypted and re-hashed; IntegrityError names pack and blob.

        A blob not in the index, or whose packs are all missing, is looked up once more in the
        index read again: a prune may have repacked it and deleted the pack since."""
        index = self.index
        try:
            return self._load_blob(index, bid, blob_type)
        except _Missing:
            pass
        try:
            return self._load_blob(self._index_after_miss(index), bid, blob_type)
        except _Missing as missing:
            raise missing.error from None

    def _load_blob(self, index: Index, bid: bytes, blob_type: str | None) -> bytes:
        locations = index.locations(bid)
        if not locations:
            hint = f" ({'; '.join(self.index_errors)})" if self.index_errors else ""
            raise _Missing(IntegrityError(f"blob {bid.hex()[:16]} is not in the index{hint}"))
        problems: list[IntegrityError] = []
        for loc in locations:  # the first copy, then any other (a lost or damaged pack)
            try:
                if blob_type and loc.type != blob_type:
                    raise IntegrityError(f"blob {bid.hex()[:16]} in pack {loc.pack[:16]} has "
                                         f"type {loc.type}, expected {blob_type}")
                return self.decode_blob(loc.pack, loc.type, bid, self._read_sealed(loc))
            except IntegrityError as exc:
                problems.append(exc)
        if all(isinstance(p, MissingObject) for p in problems):
            raise _Missing(problems[0])
        raise problems[0]

    def _read_sealed(self, loc: BlobLocation) -> bytes:
        """A blob's stored bytes. On remote backends, small blobs are read in windows of
        ``READ_WINDOW`` bytes: restores walk packs in write order, so neighbours come next."""
        if self.backend.kind == "local" or loc.length >= READ_WINDOW:
            return self.backend.get_range(pack_key(loc.pack), loc.offset, loc.length)
        with self._lock:
            for (pack, start), data in reversed(self._windows.items()):
                if pack == loc.pack and start <= loc.offset and \
                        loc.offset + loc.length <= start + len(data):
                    return data[loc.offset - start:loc.offset - start + loc.length]
        end = max(loc.offset + loc.length,
                  min(self.index.packs.get(loc.pack, 0), loc.offset + READ_WINDOW))
        data = self.backend.get_range(pack_key(loc.pack), loc.offset, end - loc.offset)
        with self._lock:
            self._windows[(loc.pack, loc.offset)] = data
            while len(self._windows) > 8:
                self._windows.popitem(last=False)
        return data[:loc.length]

    def decode_blob(self, pack_id: str, blob_type: str, bid: bytes, sealed: bytes) -> bytes:
        try:
            plain = open_blob(self.aead, blob_type, bid, sealed)
        except SealError as exc:
            raise IntegrityError(f"blob {bid.hex()[:16]} in pack {pack_id[:16]} is damaged "
                                 f"({exc})") from None
        if blob_id(self.id_key, plain) != bid:
            raise IntegrityError(f"blob {bid.hex()[:16]} in pack {pack_id[:16]} does not match "
                                 "its id")
        return plain

    def load_tree(self, tree_id: str) -> list[Node]:
        bid = bytes.fromhex(tree_id)
        with self._lock:
            cached = self._tree_cache.get(bid)
            if cached is not None:
                self._tree_cache.move_to_end(bid)
                return cached
        nodes = decode_tree(self.load_blob(bid, "T"))
        with self._lock:
            if bid not in self._tree_cache:  # another thread may have loaded it meanwhile
                self._tree_cache[bid] = nodes
                self._tree_cache_nodes += len(nodes)
            # bounded by nodes, not trees: 4096 directories of 1000 files would be 4M nodes
            while self._tree_cache_nodes > TREE_CACHE_NODES and len(self._tree_cache) > 1:
                self._tree_cache_nodes -= len(self._tree_cache.popitem(last=False)[1])
        return nodes

    # ---- snapshots -----------------------------------------------------------------------
    def load_snapshot(self, name: str) -> Snapshot:
        if name in self._snapshot_cache:
            return self._snapshot_cache[name]
        try:
            data = self.backend.get(f"snapshots/{name}")
        except IntegrityError:
            raise SnapshotNotFound(f"snapshot {name[:8]} is not in {self.url}") from None
        if content_name(data) != name:
            raise IntegrityError(f"snapshot file {name} is damaged (contents do not match its "
                                 "name)")
        try:
            doc = open_document(self.aead, data, AAD_SNAPSHOT)
        except (SealError, ValueError) as exc:
            raise IntegrityError(f"snapshot file {name} is damaged ({exc})") from None
        snap = Snapshot.model_validate({**doc, "id": name})
        self._snapshot_cache[name] = snap
        return snap

    def snapshot_names(self) -> list[str]:
        return [key.rsplit("/", 1)[-1] for key, _ in self.backend.list("snapshots/")]

    def list_snapshots(self, source_name: str | None = None, host: str | None = None
                       ) -> list[Snapshot]:
        """Every readable snapshot (of ``source_name``, of ``host`` when given), oldest first
        by :attr:`Snapshot.order_time`; damaged ones go to ``damaged_snapshots``.

        One listing gives each snapshot the storage's time of creation: a snapshot dated more
        than the clock tolerance after it (or after the storage's now) is future-dated and
        takes its place by that time of creation, never by its own date. Only the dates the
        storage gave objects decide, never this host's clock."""
        listing = [(key.rsplit("/", 1)[-1], stored)
                   for key, _size, stored in self.backend.list_times("snapshots/")]
        out = []
        for name, stored in listing:
            try:
                snap = self.load_snapshot(name)
            except IntegrityError as exc:
                self.damaged_snapshots[name] = str(exc)
                log.debug("%s", exc)
                continue
            except SnapshotNotFound:
                continue  # removed while listing
            snap.place(datetime.fromtimestamp(stored, UTC))
            if ((source_name is None or snap.source_name == source_name)
                    and (host is None or snap.host == host)):
                out.append(snap)
        return sorted(out, key=Snapshot.order_key)

    def find_snapshot(self, ref: str, source_name: str | None = None,
                      host: str | None = None) -> Snapshot:
        """'latest' (of ``source_name`` / ``host`` when given), a full id or a unique id
        prefix. 'latest' goes by :attr:`Snapshot.order_time`: a future-dated snapshot is never
        the latest by its date alone."""
        if ref == "latest":
            snaps = self.list_snapshots(source_name, host)
            if self.damaged_snapshots:
                first = next(iter(self.damaged_snapshots.values()))
                raise IntegrityError(f"cannot tell which snapshot is the latest: {first}; "
                                     "name a snapshot id to restore an older one")
            if not snaps:
                where = f" of source {source_name!r}" if source_name else ""
                where += f" from host {host!r}" if host else ""
                raise SnapshotNotFound(f"no snapshots{where} in {self.url}")
            return snaps[-1]
        matches = [n for n in self.snapshot_names() if n.startswith(ref.lower())]
        if not matches or len(ref) < 4:
            raise SnapshotNotFound(f"no snapshot {ref!r} in {self.url}")
        if len(matches) > 1:
            raise SnapshotNotFound(f"snapshot id {ref!r} is ambiguous ({len(matches)} match)")
        return self.load_snapshot(matches[0])

    def latest_snapshot(self, source_name: str, kind: str | None = None, *,
                        same_host: bool = False) -> Snapshot | None:
        """The latest snapshot of ``source_name`` (of ``kind``; with ``same_host``, only those
        this host wrote: :meth:`Snapshot.from_this_host`), or None."""
        snaps = [s for s in self.list_snapshots(source_name)
                 if (kind is None or s.kind == kind) and (not same_host or s.from_this_host())]
        return snaps[-1] if snaps else None

    def save_snapshot(self, snap: Snapshot) -> Snapshot:
        data = seal_document(self.aead, snap.manifest(), AAD_SNAPSHOT)
        name = content_name(data)
        self.backend.put(f"snapshots/{name}", data)
        snap = snap.model_copy(update={"id": name})
        self._snapshot_cache[name] = snap
        return snap

    def remove_snapshot(self, snap: Snapshot) -> None:
        """Delete a snapshot manifest (its data goes at the next prune)."""
        self.backend.delete(f"snapshots/{snap.id}")
        self._snapshot_cache.pop(snap.id, None)

    # ---- writers and readers -------------------------------------------------------------
    def writer(self, source_name: str, source_kind: str, kind: str = "full",
               parent: Snapshot | None = None, tags: list[str] | tuple[str, ...] = (),
               paths: list[str] | None = None, progress: Any = None) -> SnapshotWriter:
        from strongroom.repository.writer import SnapshotWriter

        return SnapshotWriter(self, source_name, source_kind, kind, parent, list(tags),
                              paths or [], progress)

    def reader(self, snap: Snapshot) -> SnapshotReader:
        from strongroom.repository.reader import SnapshotReader

        return SnapshotReader(self, snap)

    # ---- keyring (format 2) ---------------------------------------------------------------
    def stable_key(self, label: str, length: int = 32) -> bytes:
        """A subkey that no key rotation (epoch or master) and no migration changes, e.g. the
        audit log's MAC key: format 1 derives it from the master (HKDF, info
        ``strongroom/v1/<label>``), format 2 keeps it with the base keys."""
        if self.format_version < 2:
            from strongroom.crypto.epochs import v1_subkey

            return v1_subkey(self.master, label, length)
        return self.base.stable_key(label, length)

    def refresh_keyring(self) -> Keyring:
        """Read the keyring again: a rotation since opening makes new objects seal under the
        newer epoch (every writer shares this keyring object)."""
        if self.format_version >= 2:
            listing = sorted(self.backend.list(KEYRING_PREFIX))
            if listing != self._keyring_listing:  # unchanged names and sizes: nothing new
                try:
                    fresh = load_keyring(keyring_objects(self.backend), self.master, self.id)[1]
                except WrongKey as exc:  # the master was rotated since we opened: keep ours
                    log.debug("keyring not refreshed: %s", exc)
                    return self.keyring
                self.keyring.replace(fresh)
                self._keyring_listing = listing
        return self.keyring

    def rotate_epoch(self, attempts: int = 5) -> int:
        """Start a new data-key epoch: one new keyring object, no data touched. Two rotations
        at once get distinct epochs (create-if-absent)."""
        if self.format_version < 2:
            raise ConfigError(f"{self.url} is a format-1 repository: run `strongroom migrate` "
                              "before rotating its keys")
        for _ in range(attempts):
            objects = keyring_objects(self.backend)
            epoch = 1 + max((o.epoch for o in objects if o.name != "base"), default=0)
            obj = new_epoch_object(epoch, self.master, self.id, os.urandom(32))
            if self.backend.put_if_absent(obj.key, obj.dump()):
                self.refresh_keyring()
                return epoch
        raise StorageError(f"could not start a new epoch in {self.url}: other rotations kept "
                           "taking the next number; retry")

    # ---- key slots -----------------------------------------------------------------------
    def slots(self) -> list[KeySlot]:
        return list_slots(self.backend)

    @audit.recorded("key add", repo_arg="self")
    def add_slot(self, slot_type: SlotType, secret: bytes, label: str = "") -> KeySlot:
        slot = make_slot(self.master, self.id, slot_type, secret, label)  # type: ignore[arg-type]
        self.backend.put(f"keys/{slot.id}", slot.model_dump_json(indent=1).encode())
        return slot

    @audit.recorded("key add", repo_arg="self")
    def put_slot(self, slot: KeySlot) -> KeySlot:
        """Store a slot made by strongroom.crypto (PKCS#11, KMS, escrow) for this master key."""
        self.backend.put(f"keys/{slot.id}", slot.dump())
        return slot

    @audit.recorded("key remove", repo_arg="self")
    def remove_slot(self, slot_id: str) -> None:
        slots = {s.id: s for s in self.slots()}
        matches = [s for s in slots if s.startswith(slot_id)]
        if len(matches) != 1:
            raise ConfigError(f"no single key slot matches {slot_id!r}")
        if len(slots) == 1:
            raise ConfigError("refusing to remove the last key slot: the repository would be "
                              "unreadable")
        if matches[0] == self.slot_id:
            raise ConfigError("refusing to remove the key slot in use; open the repository "
                              "with another key first")
        self.backend.delete(f"keys/{matches[0]}")

    def close(self) -> None:
        self.backend.close()

    def after_fork(self) -> None:
        """In a child process made by ``fork`` (restore workers): locks and connections of its
        own; the keys and the index loaded before the fork are kept (no key derivation)."""
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._windows = OrderedDict()
        self._tree_cache = OrderedDict()
        self._tree_cache_nodes = 0
        self.backend.after_fork()


def list_slots(backend: Backend) -> list[KeySlot]:
    slots = []
    damaged = []
    for key, _ in backend.list("keys/"):
        try:
            slots.append(KeySlot.model_validate_json(backend.get(key)))
        except ValueError:
            damaged.append(key)
            log.warning("key slot %s is damaged; skipped", key)
    if not slots and damaged:
        raise IntegrityError(f"no usable key slot in {backend.url}: {', '.join(damaged)} "
                             "damaged")
    if not slots:
        raise StorageError(f"no key slots found in {backend.url}")
    return slots


def keyring_objects(backend: Backend) -> list[KeyringObject]:
    """Every ``keyring/`` object (the base keys and one per epoch)."""
    out = []
    for key, _ in backend.list(KEYRING_PREFIX):
        try:
            out.append(KeyringObject.parse(key, backend.get(key)))
        except MissingObject:
            continue
    if not any(o.key == BASE_KEY for o in out):
        raise IntegrityError(f"the keyring of {backend.url} is missing ({BASE_KEY})")
    return out


def config_mac(config: dict[str, Any], master: MasterKey, base: BaseKeys | None) -> str:
    """The config's MAC: under the format-1 master's subkey, or (format 2) the base keys'
    config-MAC key, which a master rotation does not change."""
    body = _canonical({k: v for k, v in config.items() if k != "mac"})
    if base is None:
        return master.mac(body)
    return hmac.new(base.config_mac_key, body, hashlib.sha256).hexdigest()


def _stored_config(backend: Backend) -> bytes | None:
    try:
        return backend.get("config")
    except MissingObject:
        return None


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
