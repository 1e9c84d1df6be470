"""flightbatch: run Welch PSD and registered functions over brain-recording datasets where the
data is, and get the result as a DataFrame.

    import flightbatch
    fb = flightbatch.connect()                      # $FLIGHTBATCH_ADDR, $FLIGHTBATCH_TOKEN
    job = fb.psd("demo", nperseg=500, bands={"beta": (13, 30)})
    df = job.to_pandas()                            # waits, with a progress bar of shards

See ``python/README.md`` in the flightbatch repository for the whole tour.
"""

from ._client import (
    Client,
    Dataset,
    DatasetLike,
    Job,
    JobCancelled,
    JobError,
    JobFailed,
    Part,
    connect,
)
from ._provenance import Provenance, freqs, provenance
from ._upload import RECORDING_SCHEMA, recording_table

__all__ = [
    "Client",
    "Dataset",
    "DatasetLike",
    "Job",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "Part",
    "Provenance",
    "RECORDING_SCHEMA",
    "connect",
    "freqs",
    "provenance",
    "recording_table",
]

__version__ = "0.1.0"
