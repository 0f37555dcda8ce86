"""Database migrations, portable across SQLite and PostgreSQL.

Conventions: times are epoch seconds in BIGINT columns (no timestamp type differences between
backends), money is integer msat (capacities in sat), flags are INTEGER 0/1.
Never edit a released migration; add a new one.
"""


async def m001_monitor(db):
    await db.execute(
        """
        CREATE TABLE daznode.settings (
            id TEXT PRIMARY KEY,
            data TEXT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        """
    )
    await db.execute(
        """
        CREATE TABLE daznode.monitor_state (
            id TEXT PRIMARY KEY,
            backend TEXT NOT NULL DEFAULT '',
            node_pubkey TEXT NOT NULL DEFAULT '',
            node_info TEXT NOT NULL DEFAULT '{}',
            last_run BIGINT NOT NULL DEFAULT 0,
            last_success BIGINT NOT NULL DEFAULT 0,
            last_duration_ms INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_error_at BIGINT NOT NULL DEFAULT 0,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            next_run BIGINT NOT NULL DEFAULT 0,
            last_rollup BIGINT NOT NULL DEFAULT 0
        );
        """
    )
    await db.execute(
        """
        CREATE TABLE daznode.cursors (
            node_pubkey TEXT PRIMARY KEY,
            forward_cursor BIGINT NOT NULL DEFAULT 0,
            updated_at BIGINT NOT NULL DEFAULT 0
        );
        """
    )
    await db.execute(
        """
        CREATE TABLE daznode.lease (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL DEFAULT '',
            acquired_at BIGINT NOT NULL DEFAULT 0,
            expires_at BIGINT NOT NULL DEFAULT 0
        );
        """
    )
    await db.execute(
        "INSERT INTO daznode.lease (name, holder, acquired_at, expires_at) "
        "VALUES ('monitor', '', 0, 0);"
    )
    await db.execute(
        """
        CREATE TABLE daznode.channels (
            channel_id TEXT PRIMARY KEY,
            native_id TEXT NOT NULL,
            channel_point TEXT NOT NULL,
            peer_id TEXT NOT NULL,
            peer_alias TEXT NOT NULL DEFAULT '',
            capacity_sat BIGINT NOT NULL,
            local_msat BIGINT NOT NULL,
            remote_msat BIGINT NOT NULL,
            active INTEGER NOT NULL,
            private INTEGER NOT NULL DEFAULT 0,
            funding_height INTEGER NOT NULL DEFAULT 0,
            local_policy TEXT,
            remote_policy TEXT,
            first_seen BIGINT NOT NULL,
            last_seen BIGINT NOT NULL,
            closed_at BIGINT NOT NULL DEFAULT 0
        );
        """
    )
    snapshot_columns = """
            channel_id TEXT NOT NULL,
            local_msat BIGINT NOT NULL,
            remote_msat BIGINT NOT NULL,
            active INTEGER NOT NULL,
            fee_rate_ppm INTEGER,
            base_fee_msat BIGINT,
            inbound_fee_rate_ppm INTEGER
    """
    await db.execute(
        f"""
        CREATE TABLE daznode.snapshots (
            ts BIGINT NOT NULL,
            {snapshot_columns},
            PRIMARY KEY (channel_id, ts)
        );
        """
    )
    # Roll-ups keep sums, not averages, so buckets can be merged exactly.
    for table in ("snapshots_hourly", "snapshots_daily"):
        await db.execute(
            f"""
            CREATE TABLE daznode.{table} (
                bucket BIGINT NOT NULL,
                channel_id TEXT NOT NULL,
                samples INTEGER NOT NULL,
                active_samples INTEGER NOT NULL,
                sum_local_msat BIGINT NOT NULL,
                min_local_msat BIGINT NOT NULL,
                max_local_msat BIGINT NOT NULL,
                capacity_msat BIGINT NOT NULL,
                last_fee_rate_ppm INTEGER,
                last_base_fee_msat BIGINT,
                PRIMARY KEY (channel_id, bucket)
            );
            """
        )
    await db.execute(
        """
        CREATE TABLE daznode.forwards (
            node_pubkey TEXT NOT NULL,
            idx BIGINT NOT NULL,
            ts BIGINT NOT NULL,
            ts_ns BIGINT NOT NULL,
            chan_in TEXT NOT NULL,
            chan_out TEXT NOT NULL,
            amt_in_msat BIGINT NOT NULL,
            amt_out_msat BIGINT NOT NULL,
            fee_msat BIGINT NOT NULL,
            status TEXT NOT NULL,
            fail_reason TEXT,
            PRIMARY KEY (node_pubkey, idx)
        );
        """
    )
    await _create_index(db, "daznode_snapshots_ts", "snapshots", "ts")
    await _create_index(db, "daznode_forwards_ts", "forwards", "ts")
    await _create_index(db, "daznode_forwards_out", "forwards", "chan_out, ts")
    await _create_index(db, "daznode_forwards_in", "forwards", "chan_in, ts")


async def _create_index(db, name: str, table: str, columns: str) -> None:
    # SQLite rejects a schema-qualified table in CREATE INDEX; the extension's SQLite file is
    # the connection's main database there, so the bare table name is the same table.
    target = table if db.type == "SQLITE" else f"daznode.{table}"
    await db.execute(f"CREATE INDEX {name} ON {target} ({columns});")


async def m002_execution(db):
    """Proposed changes (the approval queue), batches with their write-ahead journal, and the
    audit log. Policies are stored as JSON objects of integer fields."""
    await db.execute(
        """
        CREATE TABLE daznode.changes (
            id TEXT PRIMARY KEY,
            created_at BIGINT NOT NULL,
            channel_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            before_policy TEXT NOT NULL,
            after_policy TEXT NOT NULL,
            reasons TEXT NOT NULL,
            confidence REAL,
            origin TEXT NOT NULL,
            validation TEXT NOT NULL DEFAULT '[]',
            decided_by TEXT,
            decided_at BIGINT NOT NULL DEFAULT 0,
            batch_id TEXT
        );
        """
    )
    await db.execute(
        """
        CREATE TABLE daznode.batches (
            id TEXT PRIMARY KEY,
            created_at BIGINT NOT NULL,
            created_by TEXT NOT NULL,
            status TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '',
            updated_at BIGINT NOT NULL
        );
        """
    )
    await db.execute(
        """
        CREATE TABLE daznode.batch_items (
            batch_id TEXT NOT NULL,
            change_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            channel_id TEXT NOT NULL,
            status TEXT NOT NULL,
            before_policy TEXT NOT NULL,
            after_policy TEXT NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            readback TEXT,
            error TEXT,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (batch_id, change_id)
        );
        """
    )
    await db.execute(
        f"""
        CREATE TABLE daznode.audit (
            id {db.serial_primary_key},
            ts BIGINT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT ''
        );
        """
    )
    # Versioned policy backups: the canonical JSON's sha256 is kept as stored, so a backup
    # compressed later (data = base64 gzip) is verified against the same checksum.
    await db.execute(
        f"""
        CREATE TABLE daznode.backups (
            id {db.serial_primary_key},
            created_at BIGINT NOT NULL,
            reason TEXT NOT NULL,
            channel_count INTEGER NOT NULL,
            checksum TEXT NOT NULL,
            compressed INTEGER NOT NULL DEFAULT 0,
            data TEXT NOT NULL
        );
        """
    )
    await _create_index(db, "daznode_backups_created", "backups", "created_at")
    # Did an applied change work? One measurement per applied item.
    await db.execute(
        """
        CREATE TABLE daznode.impact (
            batch_id TEXT NOT NULL,
            change_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            applied_at BIGINT NOT NULL,
            evaluated_at BIGINT NOT NULL,
            outcome TEXT NOT NULL,
            rolled_back INTEGER NOT NULL DEFAULT 0,
            verdict TEXT NOT NULL,
            PRIMARY KEY (batch_id, change_id)
        );
        """
    )
    await _create_index(db, "daznode_changes_status", "changes", "status, created_at")
    await _create_index(db, "daznode_items_status", "batch_items", "status")
    await _create_index(db, "daznode_audit_ts", "audit", "ts")


async def m003_rebalances(db):
    """Rebalances Daznode ran: what moved, what it cost (for reports and the budget)."""
    await db.execute(
        f"""
        CREATE TABLE daznode.rebalances (
            id {db.serial_primary_key},
            ts BIGINT NOT NULL,
            actor TEXT NOT NULL,
            out_channel TEXT NOT NULL,
            in_channel TEXT NOT NULL,
            amount_msat BIGINT NOT NULL,
            max_fee_msat BIGINT NOT NULL,
            fee_msat BIGINT NOT NULL,
            ok INTEGER NOT NULL,
            detail TEXT NOT NULL
        );
        """
    )
    await _create_index(db, "daznode_rebalances_ts", "rebalances", "ts")


async def m004_actions(db):
    """Rebalances and closes join the approval queue: `action` holds what to do (JSON, e.g.
    the rebalance plan or the close reason), `outcome` what the node answered (closing txid,
    payment hash, error)."""
    await db.execute("ALTER TABLE daznode.changes ADD COLUMN action TEXT NOT NULL DEFAULT '{}'")
    await db.execute("ALTER TABLE daznode.changes ADD COLUMN outcome TEXT NOT NULL DEFAULT ''")


async def m005_graph(db):
    """The public graph as last synced (from the node or an uploaded snapshot) and the node
    scores computed on it. `last_seen` drives the 30-day clean-up; policies are JSON."""
    await db.execute(
        """
        CREATE TABLE daznode.graph_nodes (
            pubkey TEXT PRIMARY KEY,
            alias TEXT NOT NULL DEFAULT '',
            last_update BIGINT NOT NULL DEFAULT 0,
            last_seen BIGINT NOT NULL
        );
        """
    )
    await db.execute(
        """
        CREATE TABLE daznode.graph_channels (
            channel_id TEXT PRIMARY KEY,
            node1 TEXT NOT NULL,
            node2 TEXT NOT NULL,
            capacity_sat BIGINT NOT NULL,
            node1_policy TEXT,
            node2_policy TEXT,
            last_update BIGINT NOT NULL DEFAULT 0,
            last_seen BIGINT NOT NULL
        );
        """
    )
    await _create_index(db, "daznode_graph_channels_seen", "graph_channels", "last_seen")
    await _create_index(db, "daznode_graph_nodes_seen", "graph_nodes", "last_seen")
    await db.execute(
        """
        CREATE TABLE daznode.node_scores (
            pubkey TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            alias TEXT NOT NULL DEFAULT '',
            alias_lower TEXT NOT NULL DEFAULT '',
            channels INTEGER NOT NULL,
            capacity_sat BIGINT NOT NULL,
            composite REAL NOT NULL,
            centrality REAL NOT NULL,
            closeness REAL NOT NULL,
            connectivity REAL NOT NULL,
            capacity REAL NOT NULL,
            fees REAL NOT NULL,
            reliability REAL NOT NULL,
            betweenness REAL NOT NULL,
            closeness_raw REAL NOT NULL,
            eigenvector REAL NOT NULL,
            median_fee_ppm INTEGER,
            reasons TEXT NOT NULL DEFAULT '[]',
            rank INTEGER NOT NULL
        );
        """
    )
    for column in ("composite", "capacity_sat", "channels", "alias_lower"):
        await _create_index(db, f"daznode_node_scores_{column}", "node_scores", column)


async def m006_reports_and_purchases(db):
    """Periodic reports (one per kind and period, JSON) and premium items bought with an
    invoice: who asked, for what, the invoice, and the content once paid."""
    await db.execute(
        f"""
        CREATE TABLE daznode.reports (
            id {db.serial_primary_key},
            kind TEXT NOT NULL,
            period_start BIGINT NOT NULL,
            period_end BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            data TEXT NOT NULL,
            UNIQUE (kind, period_start)
        );
        """
    )
    await db.execute(
        """
        CREATE TABLE daznode.purchases (
            id TEXT PRIMARY KEY,
            created_at BIGINT NOT NULL,
            user_id TEXT NOT NULL,
            item TEXT NOT NULL,
            subject TEXT NOT NULL,
            price_sat BIGINT NOT NULL,
            payment_hash TEXT NOT NULL UNIQUE,
            bolt11 TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            status TEXT NOT NULL,
            paid_at BIGINT NOT NULL DEFAULT 0,
            content TEXT
        );
        """
    )
    await _create_index(db, "daznode_purchases_user", "purchases", "user_id, item, subject")


async def m007_simulations(db):
    """What-if simulations and shadow runs: the request, the result (JSON) and the outcome."""
    await db.execute(
        """
        CREATE TABLE daznode.sim_runs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            finished_at BIGINT NOT NULL DEFAULT 0,
            status TEXT NOT NULL,
            request TEXT NOT NULL,
            summary TEXT NOT NULL DEFAULT '[]',
            result TEXT,
            error TEXT
        );
        """
    )
    await _create_index(db, "daznode_sim_runs_kind", "sim_runs", "kind, created_at")


async def m008_level_trials(db):
    """Price level trials: one row per finished day, the level it ran at and what the node
    earned (the level in place now and each channel's own fee live in the settings table)."""
    await db.execute(
        """
        CREATE TABLE daznode.level_days (
            day_start BIGINT PRIMARY KEY,
            day_end BIGINT NOT NULL,
            percent INTEGER NOT NULL,
            fees_msat BIGINT NOT NULL,
            forwards INTEGER NOT NULL
        );
        """
    )


async def m009_change_level(db):
    """The price level a change's channel was at when it was proposed: what measuring the
    change teaches the engine is read back on its own fees (fee / level)."""
    await db.execute(
        "ALTER TABLE daznode.changes ADD COLUMN level_percent INTEGER NOT NULL DEFAULT 100"
    )
