"""Two regions on one machine in network namespaces, and the drill that fails one over.

``netns`` (namespaces and veth pairs), ``relay`` (the delayed link standing in for
netem), ``region`` (one region's servers), ``forward`` (cache invalidations across
regions), ``frontdoor`` (HAProxy health-checked failover), ``client`` (the order load),
``drill`` and ``__main__`` (``make region-drill``). See docs/regions.md.
"""
