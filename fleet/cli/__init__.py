"""``outpost fleet …``: the fleet's command line, as fleet/api is its REST API. :mod:`.app` mounts every group
(:mod:`.admin`: sites, gateways, tokens; :mod:`.health` and :mod:`.devices` of gateways; :mod:`.enrollment`,
:mod:`.config`, :mod:`.commands`, :mod:`.alerts` and :mod:`.alert_rules`, :mod:`.deliveries`, :mod:`.dead_letters`,
:mod:`.audit`, :mod:`.releases`, :mod:`.jobs`) and runs the fleet; :mod:`.client` is how they all call the API,
:mod:`.formats` how they all read and write values (durations, times in one zone, tables, ``--json``)."""
