"""ORM tables: tenants and their API keys, jobs, and assets with their lineage."""

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    exists,
    false,
    literal_column,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, aliased, mapped_column


class JobStatus(StrEnum):
    """Where a job is in its life: queued, running, then one final status."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        """Whether the job has finished for good."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})
# A queued or running job, spelled with literals (the condition of a partial index on jobs).
IN_FLIGHT_CONDITION = "status IN ('queued', 'running')"


class JobKind(StrEnum):
    """What a job makes: generated images, edits, variants or exported files."""

    GENERATE = "generate"
    EDIT = "edit"
    VARIANTS = "variants"
    EXPORT = "export"


class JobEventType(StrEnum):
    """A job's lifecycle events, told to live streams and webhooks."""

    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class DeliveryStatus(StrEnum):
    """Where a webhook delivery is: pending until an attempt settles it, or ended for good."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DISABLED = "disabled"
    CANCELED = "canceled"


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Base of every table."""


class Tenant(Base):
    """A customer account; every job and asset belongs to exactly one."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Jobs are refused once their estimated cost would take the month's spend past it.
    monthly_budget_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Days its finished jobs and their assets are kept: None follows the deployment's
    # `retention_days`, 0 keeps them for good.
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ApiKey(Base):
    """An API key; only its SHA-256 hash and its visible prefix are kept. A rotated key works
    until `expires_at`; a revoked one stops at once."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Job(Base):
    """One unit of image work, from `queued` to `succeeded`, `failed` or `canceled`."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency_key"),
        Index("ix_jobs_tenant_id_id", "tenant_id", "id"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        # A tenant's queued and running jobs, which its spend counts by their estimate: a small
        # index, since jobs leave it as they finish.
        Index(
            "ix_jobs_tenant_id_in_flight",
            "tenant_id",
            postgresql_where=text(IN_FLIGHT_CONDITION),
            sqlite_where=text(IN_FLIGHT_CONDITION),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED)
    model: Mapped[str] = mapped_column(String(200))
    request: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    caller_metadata: Mapped[dict[str, Any] | None] = mapped_column(
        "metadata", JSONDocument, nullable=True
    )
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    # The outputs a compared model failed to make: index, model, seed and problem of each.
    failures: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    provider_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The known cost of its stored outputs, added to as each is stored (so a job canceled or
    # failed part way keeps what it cost); null while none of them has a known price.
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The cost expected at submission (the estimate's range); null when a model's price is
    # unknown, or for a job recorded before estimates.
    estimated_cost_min_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    estimated_cost_max_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    dispatches: Mapped[int] = mapped_column(Integer, default=0)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def model_ids(self) -> list[str]:
        """Every model the job may call: its model, its fallbacks, the models it compares."""
        request = self.request
        return [self.model, *request.get("fallback_models", []), *(request.get("models") or [])]

    @classmethod
    def held_by(cls, job: "Job") -> ColumnElement[bool]:
        """True while the run that claimed `job` (fenced by its attempt number) still holds it:
        not canceled, finished, or taken over by a later run."""
        return (
            (cls.id == job.id) & (cls.status == JobStatus.RUNNING) & (cls.attempts == job.attempts)
        )

    @classmethod
    def in_flight(cls) -> ColumnElement[bool]:
        """True for a queued or running job. The statuses are written as literals, not bound,
        so Postgres sees the condition of the partial index of in-flight jobs and uses it."""
        return cls.status.in_(
            [literal_column(f"'{status}'") for status in (JobStatus.QUEUED, JobStatus.RUNNING)]
        )

    @classmethod
    def claimable(cls, now: datetime) -> ColumnElement[bool]:
        """True for a job a run may take: queued, or running under a lease that ran out."""
        return (cls.status == JobStatus.QUEUED) | (
            (cls.status == JobStatus.RUNNING) & (cls.lease_expires_at < now)
        )


class Asset(Base):
    """Stored image bytes and their facts; a generated output is keyed by job and index."""

    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("job_id", "output_index", name="uq_assets_job_output_index"),
        Index("ix_assets_tenant_id_id", "tenant_id", "id"),
        # Releasing a file looks up the live assets that still refer to it.
        Index(
            "ix_assets_storage_key_live",
            "storage_key",
            postgresql_where=text("deleted_at IS NULL"),
            sqlite_where=text("deleted_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(20))
    content_hash: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(300))
    format: Mapped[str] = mapped_column(String(10))
    # In pixels; None for an export's zip bundle, which is not an image.
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bytes: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True
    )
    output_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    seed: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Facts about how a job made this output: model, latency_ms and cost_usd, and the job
    # kind's own (an export's target and fit, a variant's variation).
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument, nullable=True)
    # Whether the bytes carry a C2PA manifest (signed by a job, or in an upload).
    content_credentials: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the asset is deleted: its bytes are released and it answers 404, but the row
    # stays so that the lineage of what was made from it can say it was deleted.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @classmethod
    def live(cls) -> ColumnElement[bool]:
        """True for an asset that was not deleted."""
        return cls.deleted_at.is_(None)

    def dimensions(self) -> tuple[int, int]:
        """Width and height in pixels of an image; only ever asked of one (the inputs of an edit
        are checked to be images first)."""
        assert self.width is not None and self.height is not None, f"{self.id} is not an image"
        return self.width, self.height


class Spend(Base):
    """A tenant's spend ledger: per UTC day of submission and model (a job's, the first of a
    comparison's) and shard, the jobs submitted, the outputs they stored and what those cost.
    It is written as jobs are submitted and outputs stored, and never as jobs are deleted, so
    what a tenant spent outlives its jobs. Readers sum a day and model's shards."""

    __tablename__ = "spend"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    # Sharded so that a busy tenant's writes do not queue on one row's lock (`SPEND_SHARDS`).
    shard: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    jobs: Mapped[int] = mapped_column(Integer, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    # The known cost of the stored outputs; an output of unknown price adds nothing.
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)


class AssetParent(Base):
    """One edge of an asset's lineage: the parent it was made from and in what role."""

    __tablename__ = "asset_parents"

    asset_id: Mapped[str] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    parent_id: Mapped[str] = mapped_column(
        ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(20), primary_key=True)


class WebhookEndpoint(Base):
    """A URL a tenant registered to receive job events, with its own signing secret. A deleted
    endpoint keeps its row (`deleted_at` set) so its deliveries remain as the audit trail."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant_id_id", "tenant_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSONDocument)
    description: Mapped[str | None] = mapped_column(String(500), nullable=True)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookSecret(Base):
    """A tenant's default signing secret, which signs deliveries to per-request webhook URLs."""

    __tablename__ = "webhook_secrets"

    tenant_id: Mapped[str] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one receiver; its id is the `webhook-id` every attempt carries, and
    `event_key` (job, event, receiver) makes a re-run job announce each event once."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_key", name="uq_webhook_deliveries_event_key"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_job_id_id", "job_id", "id"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(200))
    # Where the next attempt goes while pending (an endpoint's current URL), else where the
    # last attempt went.
    url: Mapped[str] = mapped_column(String(2048))
    event: Mapped[str] = mapped_column(String(40))
    # The exact body every attempt sends, so retries are byte-for-byte the same message.
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @classmethod
    def first_in_line(cls) -> ColumnElement[bool]:
        """True for a delivery with no earlier event of its job still pending for the same
        receiver: the one of them that may be sent now, so that a receiver gets each job's
        events in order however long it was away. Events are recorded one after another as the
        job moves on, so the database's clock at insertion orders them (the id breaks a tie)."""
        earlier = aliased(cls)
        return ~exists().where(
            earlier.job_id == cls.job_id,
            earlier.endpoint_id.is_not_distinct_from(cls.endpoint_id),
            earlier.status == DeliveryStatus.PENDING,
            tuple_(earlier.created_at, earlier.id) < tuple_(cls.created_at, cls.id),
        )


class WebhookAttempt(Base):
    """One try at sending a delivery: when, where to, what the receiver answered, how long it
    took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Null only for attempts made before each attempt's URL was kept (migration 0006).
    url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class IdempotencyRecord(Base):
    """A POST sent with an Idempotency-Key: claimed while it runs, then its first response,
    replayed to retries with the same key until it expires."""

    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("tenant_id", "key", name="uq_idempotency_records_tenant_key"),
        Index("ix_idempotency_records_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    # `in_flight` while the first request runs, `done` once its response is stored.
    status: Mapped[str] = mapped_column(String(20))
    # SHA-256 of method, path and body; set with the response.
    request_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_headers: Mapped[list[list[str]] | None] = mapped_column(JSONDocument, nullable=True)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
