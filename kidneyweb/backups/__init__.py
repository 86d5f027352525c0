"""Backups of a deployment: its database, its stored scans and heat maps, the models it trained, and MLflow's
records of the trainings (where MLflow keeps them locally).

The database is written with Django's own serialisation, not a database tool: a backup restores into
SQLite or PostgreSQL of any version (a pilot that began on SQLite moves to PostgreSQL this way), and ids
are kept, so the scan ids hospital systems hold still name the same scans. It reads one snapshot of the
database (REPEATABLE READ on PostgreSQL; SQLite's transaction holds writers back for its few seconds).
Files are copied after it: a scan uploaded meanwhile adds a file the database does not name, never the
reverse, since stored files are not deleted.

A backup holds patient data, password hashes, API token digests and sealed credentials: its folder and files are
readable by their owner only, and given a key (``KIDNEYWEB_BACKUP_KEY``) every file but the manifest is
encrypted as it is written (``backup_crypto``). The manifest holds counts, checksums of the files as stored,
migrations and the stored files' generated names, nothing about a patient, so a damaged backup is recognised
without the key.
"""

from .common import BackupError, BackupSummary, configured_key, configured_keys
from .create import backup_create
from .keep import Pruned, backup_reseal, backups_prune
from .restore import backup_restore

__all__ = ["BackupError", "BackupSummary", "Pruned", "backup_create", "backup_reseal", "backup_restore", "backups_prune",
           "configured_key", "configured_keys"]
