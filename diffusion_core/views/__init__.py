"""One view model per page: what a page shows, computed from the library and the services (compare: Compare,
evaluate and memorisation: Evaluate, degradations: Degradations, explore: Explore, reverse and sampler_costs:
Reverse diffusion, points: the 2-D lab). Pages stay thin; the core never imports this."""
