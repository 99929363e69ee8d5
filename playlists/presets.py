"""Ready-made smart playlists on the keys the current model set writes.

Each preset builds Navidrome rules from a few parameters (thresholds, a mood word,
the limit). It reads the current model set's labels (`Score`, its keys built by
tagging.keys): the Essentia heads (mood_happy-msd-musicnn-1's happy,
danceability-msd-musicnn-1's danceable, ...), the musicnn backbones' own tags
(msd-musicnn-1's chill, mtt-musicnn-1's slow, ...), tiers and the mood sets. A preset
whose keys no file in the library carries says which (`missing_keys`): its playlist
would be empty, and Navidrome would not know those fields.

The heads output probabilities (two classes summing to 1), so their thresholds sit
around 0.5-0.8; the backbones' tags are independent sigmoids that rarely pass 0.5,
so their thresholds are lower.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from playlists.fields import FieldCatalog
from playlists.rules import MAX_LIMIT, fields_used
from tagging.keys import MOOD_SETS, TIERS, mood_set_key, prefix, score_key, tier_key

MOOD_WORDS = (
    "happy",
    "sad",
    "relaxed",
    "aggressive",
    "party",
    "danceable",
    "instrumental",
    "voice",
)


@dataclass(frozen=True)
class Score:
    """One label of one model of the current set; its keys are built when a preset is."""

    model: str  # the model file's stem
    label: str  # as its sidecar says

    @property
    def key(self) -> str:
        return score_key(self.model, self.label)

    @property
    def tier_key(self) -> str:
        return tier_key(self.model, self.label)


HAPPY = Score("mood_happy-msd-musicnn-1", "happy")
SAD = Score("mood_sad-msd-musicnn-1", "sad")
RELAXED = Score("mood_relaxed-msd-musicnn-1", "relaxed")
AGGRESSIVE = Score("mood_aggressive-msd-musicnn-1", "aggressive")
PARTY = Score("mood_party-msd-musicnn-1", "party")
DANCEABLE = Score("danceability-msd-musicnn-1", "danceable")
INSTRUMENTAL = Score("voice_instrumental-msd-musicnn-1", "instrumental")
VOICE = Score("voice_instrumental-msd-musicnn-1", "voice")
FEMALE = Score("gender-msd-musicnn-1", "female")


def msd(label: str) -> Score:
    """One of the MSD musicnn backbone's own tags."""
    return Score("msd-musicnn-1", label)


def mtt(label: str) -> Score:
    """One of the MagnaTagATune musicnn backbone's own tags."""
    return Score("mtt-musicnn-1", label)


class PresetError(ValueError):
    """A preset parameter is unknown or out of range."""


@dataclass(frozen=True)
class Param:
    name: str
    label: str
    kind: str  # "score", "int" or "choice"
    default: object
    choices: tuple[str, ...] = ()

    def parse(self, raw: object) -> object:
        if self.kind == "choice":
            if raw not in self.choices:
                raise PresetError(
                    f"{self.name} must be one of {', '.join(self.choices)}, not {raw!r}"
                )
            return raw
        try:
            value = float(raw) if self.kind == "score" else int(str(raw).strip())
        except (TypeError, ValueError):
            kind = "a number from 0 to 1" if self.kind == "score" else "a whole number"
            raise PresetError(f"{self.name} must be {kind}, not {raw!r}") from None
        if self.kind == "score" and not 0 <= value <= 1:
            raise PresetError(f"{self.name} must be from 0 to 1, not {raw!r}")
        if self.kind == "int" and not 1 <= value <= MAX_LIMIT:
            raise PresetError(f"{self.name} must be from 1 to {MAX_LIMIT}, not {raw!r}")
        return value


def score(name: str, label: str, default: float) -> Param:
    return Param(name, label, "score", default)


LIMIT = Param("limit", "at most this many tracks", "int", 100)

Builder = Callable[[dict], dict]


@dataclass(frozen=True)
class Preset:
    slug: str
    name: str
    description: str
    params: tuple[Param, ...]
    build: Builder
    #: The playlist's name from the parameters (default: the preset's name), so that
    #: two playlists of one template are two files.
    title: Callable[[dict], str] | None = None

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def values(self, raw: Mapping[str, object] | None = None) -> dict:
        """The parameters: given ones parsed and checked, the rest at their defaults."""
        raw = dict(raw or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise PresetError(
                f"{self.slug} has no parameter {', '.join(unknown)} (it has: {', '.join(known)})"
            )
        return {
            name: param.parse(raw[name]) if name in raw and raw[name] not in ("", None)
            else param.default
            for name, param in known.items()
        }  # fmt: skip

    def rules(self, raw: Mapping[str, object] | None = None) -> dict:
        values = self.values(raw)
        body = self.build(values)
        name = self.title(values) if self.title else self.name
        rules = {"name": name, "comment": self.description, **body}
        if "limit" in values:
            rules["limit"] = values["limit"]
        return rules

    def keys(self) -> list[str]:
        """The Nomarr keys the preset reads (with its default parameters)."""
        ours = prefix()
        return [name for name in fields_used(self.rules()) if name.startswith(ours)]

    def missing_keys(self, catalog: FieldCatalog) -> list[str]:
        return [key for key in self.keys() if key not in catalog]


def gt(score: Score, value: float) -> dict:
    return {"gt": {score.key: value}}


def lt(score: Score, value: float) -> dict:
    return {"lt": {score.key: value}}


PRESETS: tuple[Preset, ...] = (
    Preset(
        "happy-energetic",
        "Happy and energetic",
        "Happy and danceable, happiest first.",
        (score("happy", "happy above", 0.7), score("energy", "danceable above", 0.6), LIMIT),
        lambda v: {
            "all": [gt(HAPPY, v["happy"]), gt(DANCEABLE, v["energy"])],
            "sort": f"-{HAPPY.key}",
        },
    ),
    Preset(
        "chill-evening",
        "Chill evening",
        "Relaxed, not aggressive, and tagged chill, chillout or mellow; shuffled.",
        (
            score("relaxed", "relaxed above", 0.6),
            score("aggressive", "aggressive below", 0.3),
            score("chill", "chill/chillout/mellow above", 0.1),
            LIMIT,
        ),
        lambda v: {
            "all": [
                gt(RELAXED, v["relaxed"]),
                lt(AGGRESSIVE, v["aggressive"]),
                {
                    "any": [
                        gt(msd("chill"), v["chill"]),
                        gt(msd("chillout"), v["chill"]),
                        gt(msd("mellow"), v["chill"]),
                    ]
                },
            ],
            "sort": "random",
        },
    ),
    Preset(
        "sad-slow",
        "Sad and slow",
        "Sad, and slow or hardly danceable; saddest first.",
        (
            score("sad", "sad above", 0.6),
            score("slow", "slow above", 0.2),
            score("danceable", "or danceable below", 0.4),
            LIMIT,
        ),
        lambda v: {
            "all": [
                gt(SAD, v["sad"]),
                {"any": [gt(mtt("slow"), v["slow"]), lt(DANCEABLE, v["danceable"])]},
            ],
            "sort": f"-{SAD.key}",
        },
    ),
    Preset(
        "party",
        "Party",
        "Party and danceable, or with party among its mood words; most danceable first.",
        (score("party", "party above", 0.6), score("danceable", "danceable above", 0.6), LIMIT),
        lambda v: {
            "any": [
                {"all": [gt(PARTY, v["party"]), gt(DANCEABLE, v["danceable"])]},
                {"is": {mood_set_key("regular"): "party"}},
            ],
            "sort": f"-{DANCEABLE.key}",
        },
    ),
    Preset(
        "focus",
        "Focus: instrumental and calm",
        "Instrumental, relaxed and not aggressive, for working; shuffled.",
        (
            score("instrumental", "instrumental above", 0.7),
            score("relaxed", "relaxed above", 0.5),
            score("aggressive", "aggressive below", 0.3),
            LIMIT,
        ),
        lambda v: {
            "all": [
                gt(INSTRUMENTAL, v["instrumental"]),
                gt(RELAXED, v["relaxed"]),
                lt(AGGRESSIVE, v["aggressive"]),
            ],
            "sort": "random",
        },
    ),
    Preset(
        "workout",
        "Workout",
        "Aggressive and danceable; most aggressive first.",
        (
            score("aggressive", "aggressive above", 0.6),
            score("danceable", "danceable above", 0.6),
            LIMIT,
        ),
        lambda v: {
            "all": [gt(AGGRESSIVE, v["aggressive"]), gt(DANCEABLE, v["danceable"])],
            "sort": f"-{AGGRESSIVE.key}",
        },
    ),
    Preset(
        "mood",
        "Mood",
        "Tracks whose mood set holds one mood word (strict: high tier only; loose: any "
        "tier); shuffled.",
        (
            Param("mood", "mood word", "choice", "happy", MOOD_WORDS),
            Param("set", "mood set", "choice", "regular", tuple(MOOD_SETS)),
            LIMIT,
        ),
        lambda v: {"all": [{"is": {mood_set_key(v["set"]): v["mood"]}}], "sort": "random"},
        title=lambda v: f"Mood: {v['mood']}" + ("" if v["set"] == "regular" else f" ({v['set']})"),
    ),
    Preset(
        "dance-floor",
        "Dance floor",
        "Danceability in the chosen tier; most danceable first.",
        (Param("tier", "danceable tier", "choice", "high", TIERS[:3]), LIMIT),
        lambda v: {
            "all": [{"is": {DANCEABLE.tier_key: v["tier"]}}],
            "sort": f"-{DANCEABLE.key}",
        },
    ),
    Preset(
        "acoustic-mellow",
        "Acoustic and mellow",
        "Tagged acoustic and mellow, not aggressive; shuffled.",
        (
            score("acoustic", "acoustic above", 0.15),
            score("mellow", "mellow above", 0.15),
            score("aggressive", "aggressive below", 0.4),
            LIMIT,
        ),
        lambda v: {
            "all": [
                gt(msd("acoustic"), v["acoustic"]),
                gt(msd("mellow"), v["mellow"]),
                lt(AGGRESSIVE, v["aggressive"]),
            ],
            "sort": "random",
        },
    ),
    Preset(
        "ambient",
        "Ambient soundscapes",
        "Ambient (by either backbone) and instrumental; shuffled.",
        (
            score("ambient", "ambient above", 0.2),
            score("instrumental", "instrumental above", 0.5),
            LIMIT,
        ),
        lambda v: {
            "all": [
                {"any": [gt(msd("ambient"), v["ambient"]), gt(mtt("ambient"), v["ambient"])]},
                gt(INSTRUMENTAL, v["instrumental"]),
            ],
            "sort": "random",
        },
    ),
    Preset(
        "feel-good-pop",
        "Feel-good pop",
        "Tagged pop and happy; happiest first.",
        (score("pop", "pop above", 0.2), score("happy", "happy above", 0.6), LIMIT),
        lambda v: {
            "all": [gt(msd("pop"), v["pop"]), gt(HAPPY, v["happy"])],
            "sort": f"-{HAPPY.key},title",
        },
    ),
    Preset(
        "female-vocals",
        "Female vocals",
        "Sung, by a female voice; shuffled.",
        (score("voice", "voice above", 0.6), score("female", "female above", 0.6), LIMIT),
        lambda v: {
            "all": [gt(VOICE, v["voice"]), gt(FEMALE, v["female"])],
            "sort": "random",
        },
    ),
    Preset(
        "easy-listening",
        "Easy listening",
        "Tagged easy listening, with neither sad nor aggressive among its mood words "
        "(loose set); shuffled.",
        (score("easy", "easy listening above", 0.1), LIMIT),
        lambda v: {
            "all": [
                gt(msd("easy_listening"), v["easy"]),
                {"isNot": {mood_set_key("loose"): "sad"}},
                {"isNot": {mood_set_key("loose"): "aggressive"}},
            ],
            "sort": "random",
        },
    ),
    Preset(
        "heavy-loud",
        "Heavy and loud",
        "Metal, hard rock or heavy metal, and loud; loudest first.",
        (score("heavy", "metal/hard rock above", 0.2), score("loud", "loud above", 0.2), LIMIT),
        lambda v: {
            "all": [
                {
                    "any": [
                        gt(msd("metal"), v["heavy"]),
                        gt(msd("hard_rock"), v["heavy"]),
                        gt(msd("heavy_metal"), v["heavy"]),
                    ]
                },
                gt(mtt("loud"), v["loud"]),
            ],
            "sort": f"-{mtt('loud').key}",
        },
    ),
    Preset(
        "quiet-piano",
        "Quiet piano",
        "Piano, soft or quiet, without vocals; shuffled.",
        (score("piano", "piano above", 0.2), score("soft", "soft/quiet above", 0.15), LIMIT),
        lambda v: {
            "all": [
                gt(mtt("piano"), v["piano"]),
                {"any": [gt(mtt("soft"), v["soft"]), gt(mtt("quiet"), v["soft"])]},
                {"notContains": {mood_set_key("loose"): "voice"}},
            ],
            "sort": "random",
        },
    ),
)

BY_SLUG = {preset.slug: preset for preset in PRESETS}


def get(slug: str) -> Preset:
    try:
        return BY_SLUG[slug]
    except KeyError:
        raise PresetError(
            f"no template {slug!r}; there are: {', '.join(sorted(BY_SLUG))}"
        ) from None
