"""Settings: one class, read from DARKROOM_* environment variables and validated at start-up."""

import re
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.fetcher import UrlPolicy

MEGABYTE = 1024 * 1024
# A self-hosted model's name, as `diffusers/<name>` gives it.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# Where Darkroom runs from a source checkout (as `make run` does), the folder holding `app/`.
SOURCE_CHECKOUT = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    """The data dir when DARKROOM_DATA_DIR is unset: `var` in the source checkout Darkroom runs
    from, else (an installed package) the user's data directory. Never the working directory, so
    `make run` and `darkroom keys create` run from anywhere use the same database."""
    if (SOURCE_CHECKOUT / "pyproject.toml").is_file():
        return SOURCE_CHECKOUT / "var"
    return platformdirs.user_data_path("darkroom")


class Settings(BaseSettings):
    """Every knob of a Darkroom process; the API, the worker and the CLI read the same ones.

    Unset, `data_dir` is `var` in the source checkout (where `make run` keeps its data) or, for
    an installed package, the user's data directory (`~/.local/share/darkroom` on Linux); a
    relative DARKROOM_DATA_DIR is taken from the working directory once, at start-up.
    """

    # An empty variable (`DARKROOM_OPENAI_API_KEY=` in a .env file) counts as unset.
    model_config = SettingsConfigDict(
        env_prefix="DARKROOM_", env_file=".env", extra="ignore", env_ignore_empty=True
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the embedded database, assets and signing key live.",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy async URL; unset means a SQLite file in the data dir."
    )
    opentelemetry: bool = Field(
        False,
        description="FastAPI's OpenTelemetry spans, metrics and logs for each request, sent to "
        "the globally configured providers (set up by `opentelemetry-instrument`, for one).",
    )
    metrics: bool = Field(
        True,
        description="Serve Prometheus metrics at `/metrics` on the API's own address; off "
        "answers 404 there.",
    )
    playground: bool = Field(
        True,
        description="Serve the browser playground at `/` (static files that call the public "
        "API with a pasted key); off answers 404 there.",
    )
    worker_metrics_port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="Port on which each `darkroom worker` serves its Prometheus metrics "
        "(`/metrics`); 0 turns them off.",
    )
    worker_metrics_address: str = Field(
        "127.0.0.1",
        description="Address a worker's metrics port listens on; `0.0.0.0` for a scraper on "
        "another machine.",
    )
    log_format: Literal["text", "json"] = Field(
        "text",
        description="`text` for lines a person reads; `json` for one JSON object a line, with "
        "the request id and, inside a job, its id, tenant, kind and attempt.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        description="The least severe log lines written; prompts and image details appear "
        "only at DEBUG.",
    )
    database_pool_size: int = Field(
        20,
        ge=1,
        le=1000,
        description="Postgres connections one process keeps open; up to half as many more are "
        "opened for a burst and closed after.",
    )
    redis_url: str | None = Field(
        None, description="Redis for the arq queue; unset means the in-process job runner."
    )
    queue_name: str = Field("darkroom:queue", description="The arq queue's Redis key.")
    host: str = Field("127.0.0.1", description="Address `darkroom serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `darkroom serve` listens on.")
    default_model: str = Field("local/draft", description="Model used when a request names none.")
    draft_labels: bool = Field(
        True,
        description="Caption each `local/draft` image with its brief's subject words and tag it "
        "DRAFT; off renders the bare procedural draft.",
    )
    startup_timeout_seconds: float = Field(
        60,
        ge=0,
        description="How long a `darkroom` command waits for the database to take connections "
        "at start-up, retrying with backoff, before it exits.",
    )

    max_body_bytes: int = Field(25 * MEGABYTE, ge=1024, description="Largest request body.")
    max_image_pixels: int = Field(40_000_000, ge=4096, description="Largest decoded image.")

    runner_concurrency: int = Field(
        500,
        ge=1,
        description="Jobs run at once by one process. A job waiting on a vendor holds a "
        "coroutine, not a thread; pixel work is bounded by `cpu_threads` whatever this is.",
    )
    tenant_max_running: int = Field(
        0,
        ge=0,
        description="Jobs of one tenant running at once: across every worker (held in Redis "
        "and freed with a dead worker's leases), or in the one process of the embedded default. "
        "A job past it stays queued and waits for its tenant's next turn while other tenants' "
        "jobs start. 0 means no cap.",
    )
    cpu_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="Threads a process gives to pixel work (decoding, fitting, encoding, local "
        "renders, exports); 0 means one per core.",
    )
    memory_budget_mb: int = Field(
        0,
        ge=0,
        description="MiB of decoded pixels a process works on at once; image work waits until "
        "its estimate fits. 0 means a quarter of the machine's memory (or of its cgroup limit), "
        "at least 512.",
    )
    job_output_concurrency: int = Field(
        10,
        ge=1,
        le=10,
        description="Outputs of one job made at once (each its own model call, or together in "
        "one call where the vendor makes several images a call); an export makes its files "
        "one at a time.",
    )
    job_lease_seconds: float = Field(
        15,
        gt=0,
        description="A running job whose worker is silent this long is re-run; its run renews "
        "the lease every third of it.",
    )
    job_timeout_seconds: float = Field(900, gt=0, description="Longest one run of a job may take.")
    queued_grace_seconds: float = Field(
        60, ge=0, description="A queued job the queue does not know of is re-sent after this."
    )
    queue_poll_seconds: float = Field(
        0.25,
        gt=0,
        le=5,
        description="How often an idle worker reads the queue unasked: a dispatch wakes it at "
        "once, so this bounds only deferred webhook attempts and a wake missed while Redis "
        "reconnects.",
    )
    sweep_interval_seconds: float = Field(
        5,
        gt=0,
        description="How often the sweeper looks (one process of those sharing a Redis per "
        "interval): a dead worker's job runs again within the lease and this.",
    )
    max_job_attempts: int = Field(3, ge=1, description="Runs of one job before it is failed.")
    retention_days: int | None = Field(
        None,
        ge=1,
        description="Days after which the sweeper deletes finished jobs with their outputs, and "
        "uploads; unset keeps them for good. A tenant's own setting overrides it.",
    )
    openai_compat_wait_seconds: float = Field(
        900,
        gt=0,
        description="How long an OpenAI-compatible call waits for its job (they answer only "
        "with the images); past it, 504 naming the job, which goes on.",
    )
    max_wait_seconds: int = Field(
        60, ge=0, le=60, description="Cap on the `Prefer: wait=N` header."
    )
    key_cache_seconds: float = Field(
        2,
        ge=0,
        le=60,
        description="How long an API process remembers a live key's tenant. A revocation "
        "reaches every process sharing a Redis within a second; without Redis, one made by "
        "another process (the CLI) within this time. 0 reads the key on every request.",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token of the operator API (`/v1/admin/...`: list, create, revoke "
        "and rotate API keys, and set a tenant's monthly budget with PUT "
        "/v1/admin/tenants/{tenant}/budget); unset turns that API off (404).",
    )
    budget_unpriced_models: Literal["allow", "refuse"] = Field(
        "allow",
        description="For a tenant with a monthly budget: whether a job on a model whose price is "
        "not known here is accepted (its reported cost counts once it has run) or refused with "
        "402 `budget-exceeded`.",
    )
    idempotency_key_seconds: int = Field(
        24 * 3600,
        ge=60,
        description="How long an Idempotency-Key names its first request: a retry within it "
        "gets the first answer; after it, the key may name a new request.",
    )
    events_heartbeat_seconds: float = Field(
        15, gt=0, description="Idle time after which a job event stream sends a heartbeat."
    )
    events_max_streams_per_tenant: int = Field(
        100,
        ge=0,
        description=(
            "Job event streams one tenant may hold open at once, counted per API process; "
            "0 means no cap."
        ),
    )
    rate_limit_requests: int = Field(
        600, ge=0, description="Requests one API key may make per window; 0 turns limits off."
    )
    rate_limit_window_seconds: int = Field(
        60, ge=1, description="The rate limit's window, in seconds."
    )

    c2pa_certificate: Path | None = Field(
        None,
        description=(
            "PEM file of the certificate chain that signs Content Credentials (the signer's "
            "certificate first, then its issuers); with `c2pa_private_key`. Unset, a "
            "development chain made in the data dir signs, for testing only."
        ),
        examples=["/etc/darkroom/c2pa-chain.pem"],
    )
    c2pa_private_key: Path | None = Field(
        None,
        description="PEM file of the private key of `c2pa_certificate` (EC P-256/384/521, RSA "
        "or Ed25519).",
        examples=["/etc/darkroom/c2pa-key.pem"],
    )

    url_allow: str = Field(
        "",
        description=(
            "Comma-separated host names, addresses or CIDRs exempt from the fetcher's address "
            "rules (loopback, private, link-local, metadata): on every port, or written "
            "`host:port` (`[IPv6]:port`) on that port only; empty by default."
        ),
    )

    storage_url: str | None = Field(
        None,
        description=(
            "Where asset bytes live: unset keeps them in `<data_dir>/assets`; "
            "`s3://bucket/prefix` puts them in an S3-compatible bucket every process can reach."
        ),
        examples=["s3://darkroom-assets/production"],
    )
    storage_endpoint: str | None = Field(
        None,
        description=(
            "The S3 endpoint, for MinIO, R2 or GCS interop; unset means `AWS_ENDPOINT_URL`, "
            "else AWS itself."
        ),
        examples=["http://minio:9000"],
    )
    storage_region: str | None = Field(
        None, description="The bucket's region; unset means `AWS_REGION`, else us-east-1."
    )
    storage_access_key_id: str | None = Field(
        None, description="S3 access key id; unset means `AWS_ACCESS_KEY_ID`."
    )
    storage_secret_access_key: SecretStr | None = Field(
        None, description="S3 secret access key; unset means `AWS_SECRET_ACCESS_KEY`."
    )
    storage_redirect_seconds: int = Field(
        0,
        ge=0,
        le=604800,
        description=(
            "Above 0, a download of an asset in S3 redirects (307) to a presigned URL of the "
            "bucket valid this many seconds, instead of streaming through the API."
        ),
    )
    storage_timeout_seconds: float = Field(
        10, gt=0, description="How long one request to the S3 store may take, retries included."
    )
    storage_retries: int = Field(
        2,
        ge=0,
        le=10,
        description="Retries of an S3 request that failed to connect or got a 5xx.",
    )

    signing_secret: SecretStr | None = Field(
        None,
        description=(
            "Key of signed asset URLs; unset means a random key kept in `<data_dir>/signing.key`, "
            "which processes sharing the data dir share."
        ),
    )
    public_url: str | None = Field(
        None,
        description="The API's public base URL, for absolute links in webhook payloads.",
        examples=["https://darkroom.example.com"],
    )
    webhook_retry_schedule: str = Field(
        "5,300,1800,7200,18000,36000,36000",
        description="Seconds before each retry of a failed webhook delivery, comma-separated.",
    )
    webhook_timeout_seconds: float = Field(
        10, gt=0, description="How long a webhook receiver has to answer one delivery."
    )

    openai_api_key: SecretStr | None = Field(
        None, description="OpenAI API key; unset lists the openai models as unavailable."
    )
    openai_base_url: str = Field(
        "https://api.openai.com/v1", description="OpenAI API base URL, as its SDK takes it."
    )
    google_api_key: SecretStr | None = Field(
        None, description="Gemini API key; unset lists the google models as unavailable."
    )
    google_base_url: str = Field(
        "https://generativelanguage.googleapis.com/v1beta",
        description="Gemini API base URL, as its SDK takes it.",
    )
    stability_api_key: SecretStr | None = Field(
        None, description="Stability AI API key; unset lists the stability models as unavailable."
    )
    stability_base_url: str = Field(
        "https://api.stability.ai", description="Stability AI API base URL."
    )
    bfl_api_key: SecretStr | None = Field(
        None, description="Black Forest Labs API key; unset lists the bfl models as unavailable."
    )
    bfl_base_url: str = Field("https://api.bfl.ai", description="Black Forest Labs API base URL.")
    replicate_api_key: SecretStr | None = Field(
        None, description="Replicate API token; unset lists the replicate models as unavailable."
    )
    replicate_base_url: str = Field(
        "https://api.replicate.com/v1", description="Replicate API base URL."
    )
    fal_api_key: SecretStr | None = Field(
        None, description="fal API key; unset lists the fal models as unavailable."
    )
    fal_base_url: str = Field("https://queue.fal.run", description="fal queue API base URL.")
    openai_compat_api_key: SecretStr | None = Field(
        None, description="API key of an OpenAI-compatible image server, if it needs one."
    )
    openai_compat_base_url: str | None = Field(
        None,
        description="Base URL of a server that speaks OpenAI's image endpoints; unset lists "
        "its models as unavailable.",
    )
    openai_compat_models: str = Field(
        "", description="Comma-separated model ids the OpenAI-compatible server serves."
    )
    diffusers_models: str = Field(
        "",
        description="Self-hosted diffusers models, as `name=source` pairs separated by commas "
        "(`sdxl-turbo=stabilityai/sdxl-turbo,mine=/models/mine`): each is served as "
        "`diffusers/<name>` from a Hugging Face repo id (read from the local Hugging Face "
        "cache, never downloaded) or a directory saved with `save_pretrained`. Needs the "
        "`diffusers` extra on GPU workers; their jobs run only on `darkroom worker --queue gpu`.",
    )
    diffusers_device: Literal["auto", "cuda", "mps", "cpu"] = Field(
        "auto",
        description="Where self-hosted models run; `auto` takes CUDA, then Apple's MPS, then "
        "the CPU.",
    )
    diffusers_precision: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        "auto",
        description="The weights' precision; `auto` is float16 on a GPU and float32 on the CPU.",
    )
    diffusers_load: Literal["startup", "first_use"] = Field(
        "startup",
        description="When a GPU worker loads each model's weights: all at start-up (its first "
        "job waits for none), or each on the first job that needs it.",
    )
    diffusers_steps: int = Field(
        30,
        ge=1,
        le=500,
        description="Denoising steps of a `standard` image (`draft` takes half, `high` half as "
        "many again); 1 to 4 suit turbo and lightning models.",
    )
    diffusers_guidance_scale: float = Field(
        7.5,
        ge=0,
        le=50,
        description="How closely images follow the prompt (classifier-free guidance); 0 for "
        "turbo models, which are trained without it.",
    )
    diffusers_gpu_second_usd: float = Field(
        0.0,
        ge=0,
        description="What a second of a GPU worker's pipeline time costs, in USD: a "
        "self-hosted image costs its seconds times this.",
    )
    gpu_worker_concurrency: int = Field(
        1,
        ge=1,
        le=64,
        description="Jobs one `darkroom worker --queue gpu` runs at once; a job's `n` images "
        "are made in one pipeline call.",
    )
    prompt_llm_base_url: str | None = Field(
        None,
        description="OpenAI-compatible chat completions base URL for `optimize: llm`; unset "
        "makes llm mode use the rules (and say so on the job).",
    )
    prompt_llm_model: str = Field("gpt-4.1-mini", description="Chat model for `optimize: llm`.")
    prompt_llm_api_key: SecretStr | None = Field(None, description="API key of the LLM endpoint.")
    prompt_llm_timeout_seconds: float = Field(
        8.0, gt=0, le=60, description="Longest wait for the LLM before falling back to the rules."
    )
    provider_timeout_seconds: float = Field(
        120.0, gt=0, description="How long one request to a model vendor may take."
    )
    provider_timeouts: str = Field(
        "",
        description="Per-vendor overrides of provider_timeout_seconds, as `vendor=seconds` "
        "pairs separated by commas (`bfl=300,openai=180`).",
    )
    provider_max_retries: int = Field(
        6,
        ge=0,
        le=10,
        description="Retries of a vendor request that failed for a passing reason: seven "
        "attempts see a job through a vendor failing two calls in five.",
    )
    provider_max_connections: int = Field(
        500,
        ge=1,
        le=10_000,
        description="Calls one process has in flight to one vendor (its pooled connections); "
        "more wait for a free one. A waiting call holds a coroutine, not a thread.",
    )
    provider_retry_backoff_seconds: float = Field(
        0.5,
        gt=0,
        description="First wait before retrying a vendor request when the vendor names none; "
        "it doubles each retry, with jitter, up to 8 s.",
    )
    provider_breaker_threshold: int = Field(
        5, ge=1, description="Failed vendor requests in a row that open the vendor's breaker."
    )
    provider_breaker_cooldown_seconds: float = Field(
        10.0, gt=0, description="How long an open breaker pauses calls before one trial call."
    )
    provider_breaker_max_wait_seconds: float = Field(
        120.0,
        ge=0,
        description="Longest a vendor request waits on an open breaker before it is sent anyway.",
    )

    @field_validator("provider_timeouts")
    @classmethod
    def _provider_timeouts_parse(cls, value: str) -> str:
        timeouts_by_vendor(value)
        return value

    @field_validator("diffusers_models")
    @classmethod
    def _diffusers_models_parse(cls, value: str) -> str:
        self_hosted_models(value)
        return value

    @field_validator("url_allow")
    @classmethod
    def _url_allow_parses(cls, value: str) -> str:
        # A typo in the allow list should stop the process at start-up, not open a hole later.
        UrlPolicy.from_setting(value)
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _retry_schedule_parses(cls, value: str) -> str:
        _seconds_list(value)
        return value

    @model_validator(mode="after")
    def _resolve_paths(self) -> "Settings":
        # Absolute, so a process that changes directory still finds its data.
        self.data_dir = self.data_dir.resolve()
        if self.database_url is None:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir / 'darkroom.db'}"
        return self

    @model_validator(mode="after")
    def _shared_signing_secret(self) -> "Settings":
        # With Redis the API and its workers are separate processes, perhaps on other machines;
        # a key file each made for itself would sign links the others refuse.
        if self.redis_url and self.signing_secret is None:
            raise ValueError(
                "DARKROOM_SIGNING_SECRET must be set when DARKROOM_REDIS_URL is: the API and "
                "every worker sign asset links with it"
            )
        return self

    @model_validator(mode="after")
    def _c2pa_pair(self) -> "Settings":
        if (self.c2pa_certificate is None) != (self.c2pa_private_key is None):
            raise ValueError(
                "DARKROOM_C2PA_CERTIFICATE and DARKROOM_C2PA_PRIVATE_KEY are set together or not "
                "at all"
            )
        for path in (self.c2pa_certificate, self.c2pa_private_key):
            if path is not None and not path.is_file():
                raise ValueError(f"The C2PA credentials file {path} does not exist")
        return self

    @field_validator("storage_url")
    @classmethod
    def _storage_url_is_s3(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith("s3://"):
            raise ValueError("DARKROOM_STORAGE_URL is `s3://bucket/prefix` or unset")
        return value

    @property
    def asset_dir(self) -> Path:
        """The local directory that holds asset bytes."""
        return self.data_dir / "assets"

    def provider_timeout(self, vendor: str) -> float:
        """Seconds one request to `vendor` may take: its override, else the common limit."""
        return timeouts_by_vendor(self.provider_timeouts).get(vendor, self.provider_timeout_seconds)

    @property
    def url_policy(self) -> UrlPolicy:
        """The fetcher's address policy from `url_allow`."""
        return UrlPolicy.from_setting(self.url_allow)

    @property
    def webhook_retry_delays(self) -> tuple[float, ...]:
        """Seconds before each retry of a webhook delivery, from `webhook_retry_schedule`."""
        return _seconds_list(self.webhook_retry_schedule)


def _seconds_list(value: str) -> tuple[float, ...]:
    """`"5,300"` -> (5.0, 300.0); ValueError for a negative or non-numeric entry."""
    seconds = tuple(float(entry) for entry in value.split(",") if entry.strip())
    if not all(0 <= entry < float("inf") for entry in seconds):
        raise ValueError("delays must be finite and not negative")
    return seconds


def self_hosted_models(setting: str) -> dict[str, str]:
    """`DARKROOM_DIFFUSERS_MODELS` as name -> source, in order; ValueError if malformed. A name
    may be written with its `diffusers/` prefix."""
    models: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in setting.split(","))):
        name, separator, source = (piece.strip() for piece in entry.partition("="))
        name = name.removeprefix("diffusers/")
        if not separator or not source or not MODEL_NAME.fullmatch(name):
            raise ValueError(f"{entry!r} is not `name=source` (a repo id or a directory)")
        if name in models:
            raise ValueError(f"the model name {name!r} is given twice")
        models[name] = source
    return models


def timeouts_by_vendor(value: str) -> dict[str, float]:
    """`"bfl=300, openai=180"` -> {"bfl": 300.0, "openai": 180.0}; ValueError if malformed."""
    timeouts: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        vendor, separator, seconds = entry.partition("=")
        try:
            timeout = float(seconds) if separator and vendor.strip() else 0.0
        except ValueError:
            timeout = 0.0
        if not 0 < timeout < float("inf"):
            raise ValueError(f"{entry!r} is not `vendor=seconds` with seconds above 0")
        timeouts[vendor.strip()] = timeout
    return timeouts
