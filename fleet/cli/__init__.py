"""``outpost fleet …``: the fleet's command line, as fleet/api is its REST API. :mod:`.app` mounts every group
(:mod:`.admin`: sites, gateways, tokens; :mod:`.enrollment`, :mod:`.config`, :mod:`.commands`, :mod:`.alerts` and
:mod:`.alert_rules`, :mod:`.dead_letters`) and runs the fleet; :mod:`.client` is how they all call the API."""
