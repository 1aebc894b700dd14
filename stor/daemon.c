/* stor/daemon.c - see daemon.h: a thread's handles on the volume. */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

int ctx_open(struct stord *d, struct ctx *c, char *err, size_t errlen)
{
	memset(c, 0, sizeof *c);
	c->d = d;
	for (size_t i = 0; i < d->cfg.stor.nbackends; i++)
		if (backend_open(&d->cfg.stor.backends[i], 5000, &c->b[i]))
			return -ENOMEM;
	c->os = (struct objstore){ .k = d->vol.k, .m = d->vol.m, .backends = c->b,
				   .nbackends = d->cfg.stor.nbackends, .health = d->health,
				   .min_shards = d->min_shards };
	memcpy(c->os.volume_id, d->vol.id, 16);
	memcpy(c->os.volhex, d->vol.idhex, 33);
	memcpy(c->os.meta_key, d->vol.meta_key, 32);
	struct codec_params p = { .k = d->vol.k, .m = d->vol.m, .zstd_level = d->cfg.stor.compression };
	memcpy(p.volume_id, d->vol.id, 16);
	memcpy(p.key, d->vol.seg_key, 32);
	int r = codec_new(&p, &c->codec);
	if (r)
		snprintf(err, errlen, "%s", r == -ENOTSUP ? "the erasure code backend cannot be "
			 "loaded (install libisal2)" : strerror(-r));
	return r;
}

void ctx_close(struct ctx *c)
{
	for (size_t i = 0; i < c->d->cfg.stor.nbackends; i++)
		backend_close(c->b[i]);
	codec_free(c->codec);
}
