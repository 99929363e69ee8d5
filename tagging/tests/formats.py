"""The audio formats Nomarr tags, as the tests and benchmarks make them (no Django here:
benchmarks import it before Django is set up)."""

#: Extension -> ffmpeg encoder arguments. Low bitrates/effort: these only need
#: to be real files of each container, not good-sounding ones.
AUDIO_FORMATS: dict[str, list[str]] = {
    "mp3": ["-c:a", "libmp3lame", "-q:a", "9"],
    "flac": ["-c:a", "flac", "-compression_level", "0"],
    "ogg": ["-c:a", "libvorbis", "-q:a", "0"],
    "opus": ["-c:a", "libopus", "-b:a", "24k"],
    "m4a": ["-c:a", "aac", "-b:a", "32k"],
    "wav": ["-c:a", "pcm_s16le"],
    "aiff": ["-c:a", "pcm_s16be"],
}
