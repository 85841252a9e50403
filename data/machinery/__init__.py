"""The shared machinery of every stage, kept apart from the contract modules of ``tapos.data``:
video I/O (:mod:`.ffmpeg`), fetching and checking source videos (:mod:`.fetch`,
:mod:`.check_videos`), the torch dataset over a feature cache (:mod:`.dataset`), distributed
runs (:mod:`.distributed`), the one job that writes a cache (:mod:`.cache_job`: tapos-extract and
import-features are its subclasses), checkpoints (:mod:`.checkpoints`), figures (:mod:`.plotting`) and the
helpers of every command line (:mod:`.cli_utils`).

Nothing here defines a format; each module imports only the contract modules it needs."""
