"""One module per engine: ``process`` (stdlib), ``dask`` (dask.distributed), ``ray`` (Ray).

Empty on purpose, so that importing one engine's executor loads no other engine.
"""
