"""All configuration, read from the environment or `.env` (see `.env.example`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Development default for the PIN pepper: `make run` works with no set-up, and production
# refuses it, so a forgotten secret can never ship.
DEV_PIN_PEPPER = "dev-only-pin-pepper-change-me"
# Fault-injection settings (tests and `make chaos` only): production refuses any set.
FAULT_SETTINGS = (
    "fault_tool_delay_after_commit_s",
    "fault_llm_delay_s",
    "fault_speak_delay_s",
    "fault_dial_delay_s",
)


class ConfigError(Exception):
    """A setting is missing or wrong; the message names it in one line."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    convonet_env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("var")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "convonet"
    temporal_ui_port: int = Field(8233, ge=1, le=65535)

    # Storage
    database_url: str | None = None
    redis_url: str | None = None
    embedded_redis_port: int = Field(6390, ge=1, le=65535)

    # Edge
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    cors_origins: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:8000"])

    # Worker: its Prometheus metrics (the API serves its own at /metrics); port 0 = off
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(9464, ge=0, le=65535)

    # Secrets
    pin_pepper: str = DEV_PIN_PEPPER

    # Conversation behaviour
    session_ttl_s: int = Field(3600, gt=0)
    idle_timeout_s: int = Field(300, gt=0)
    # A conversation continues-as-new once its history has this many events.
    history_event_limit: int = Field(2000, ge=20)
    max_pin_failures_per_conversation: int = Field(5, gt=0)
    max_pin_failures_per_address: int = Field(10, gt=0)
    address_lockout_s: int = Field(300, gt=0)
    default_timezone: str = "UTC"

    # LLM: Claude when a key is set, else the embedded intent model
    anthropic_api_key: str | None = None
    anthropic_model: str = "claude-sonnet-4-5"
    anthropic_base_url: str | None = None

    # Speech: pocketsphinx + eSpeak NG unless a Deepgram key is set
    deepgram_api_key: str | None = None
    # Stand-in servers in tests; unset means Deepgram's own endpoints.
    deepgram_base_url: str | None = None
    deepgram_stt_model: str = "nova-3"
    deepgram_tts_model: str = "aura-2-thalia-en"
    deepgram_endpointing_ms: int = Field(300, ge=10, le=5000)
    # Processes decoding speech with pocketsphinx; 0 means one per CPU core.
    pocketsphinx_processes: int = Field(0, ge=0, le=64)
    espeak_voice: str = "en-us"
    espeak_speed_wpm: int = Field(175, ge=80, le=450)

    # Voice edge: VAD and the audio streams in Redis
    end_of_speech_silence_ms: int = Field(300, ge=100, le=3000)
    vad_aggressiveness: int = Field(2, ge=0, le=3)
    max_utterance_s: int = Field(30, ge=2, le=120)
    audio_max_frames_per_s: int = Field(100, ge=10, le=1000)
    audio_stream_ttl_s: int = Field(300, ge=10)

    # Agent leg: Twilio + FusionPBX when set, else built-in dashboard mode
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    # Stand-in servers in tests; unset means Twilio's own API.
    twilio_api_base_url: str | None = None
    # SIP credentials Twilio presents to FusionPBX, when the domain asks for them.
    twilio_sip_username: str | None = None
    twilio_sip_password: str | None = None
    fusionpbx_domain: str | None = None
    # Where the dashboard's softphone registers (JsSIP over WSS); set means PBX mode.
    fusionpbx_wss_url: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"

    # Transfers to a human agent
    transfer_ring_timeout_s: int = Field(30, ge=5, le=300)
    # Waiting for the answered agent's audio to connect before the transfer fails.
    transfer_connect_timeout_s: int = Field(15, ge=2, le=120)
    agent_session_ttl_s: int = Field(12 * 3600, gt=0)
    max_agent_login_failures: int = Field(10, gt=0)

    # Calendar: Google when credentials are set, else local tables
    google_calendar_credentials_file: Path | None = None
    google_calendar_token_file: Path | None = None
    google_calendar_id: str = "primary"

    # Fault injection for the durability tests and `make chaos`; zero in normal runs and
    # refused in production. Each holds one phase of a turn open so a test can kill the
    # worker inside it.
    fault_tool_delay_after_commit_s: float = Field(0.0, ge=0)
    # Each LLM step waits this long before the engine is asked.
    fault_llm_delay_s: float = Field(0.0, ge=0)
    # The reply pauses this long once its first audio is written (mid reply).
    fault_speak_delay_s: float = Field(0.0, ge=0)
    # A dial's first attempt rings the agent, then waits this long before recording the leg.
    fault_dial_delay_s: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> Settings:
        if self.convonet_env == "production":
            if self.pin_pepper == DEV_PIN_PEPPER:
                raise ValueError("PIN_PEPPER must be set to a secret value in production")
            # A fault hook left on would stall real callers' turns.
            for name in FAULT_SETTINGS:
                if getattr(self, name):
                    raise ValueError(f"{name.upper()} must be 0 in production")
        return self

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'convonet.db').resolve()}"

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def twilio_enabled(self) -> bool:
        return bool(
            self.twilio_account_sid
            and self.twilio_auth_token
            and self.twilio_from_number
            and self.fusionpbx_domain
        )

    @property
    def is_production(self) -> bool:
        return self.convonet_env == "production"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    name = ".".join(str(p) for p in first.get("loc", ())).upper()
    message = first.get("msg", "invalid value")
    return f"{name}: {message}" if name else message


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(f"configuration error: {_describe(error)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
