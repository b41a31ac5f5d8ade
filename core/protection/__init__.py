"""How health data is protected: the hash-chained access log, health content and national IDs sealed at
rest with per-case and per-person keys, rotation of the master keys, and the retention purge."""
