// SPDX-License-Identifier: GPL-2.0-only
/*
 * A seeded, replayable random history of VFIO no-IOMMU use through the
 * device cdev and iommufd, on the real edu device, checked after every step
 * against a userspace model of what each IOAS must hold.
 *
 *   noiommu_history BDF [harness options]
 *
 * Environment:
 *   HISTORY_SEED         the seed (default: the time); always printed as
 *                        "# seed N", so that a failure can be replayed
 *   HISTORY_STEPS        number of steps (default 10000)
 *   HISTORY_OPS          op kinds to leave out ("-hwpt,-copy"), or the only
 *                        ones to run ("map,unmap,attach"); the kinds are
 *                        map unmap copy hwpt destroy attach detach reopen,
 *                        dma (the DMA round trips), huge (hugetlb memory)
 *                        and top (fixed IOVAs in the last 16 MiB)
 *   HISTORY_CHECK_TABLE  0 turns the nr_iommu_pages check off (default 1)
 *   HISTORY_TRACE        1 prints every op and its answer (for replays)
 *
 * The ops: MAP with automatic and fixed IOVAs of 4 KiB pages, of 2 MiB
 * hugetlb pages, of both at adjacent IOVAs, of the two halves of one huge
 * page at adjacent IOVAs, of a huge page into a 2 MiB block that held 4 KiB
 * leaves before, over live mappings, and of memory already mapped; UNMAP of
 * whole mappings, of several at once, of part of one, of holes and of
 * everything; COPY between IOASes; IOMMU_HWPT_ALLOC (flags 0 and not);
 * IOMMU_DESTROY of HWPTs and IOASes; attach, replace, detach; closing and
 * re-opening everything.
 *
 * The model's rules, from SPEC.md (5.3, 5.6, 6) and iommufd's code:
 *  - Mappings ("areas"): a fixed MAP or COPY fails EEXIST if it overlaps a
 *    live area and changes nothing; an automatic one takes the lowest IOVA
 *    >= 4 KiB, aligned to min(roundup_pow_of_two(length), alignment of the
 *    user address, 2 MiB with THP, else 4 KiB), whose range ends below
 *    ULONG_MAX - 4 KiB and overlaps nothing (iopt_alloc_iova()). COPY takes
 *    a range covered by IOVA-contiguous areas (else ENOENT) and makes one
 *    area per source area it touches, sharing its pages object.
 *  - UNMAP (iopt_unmap_iova_range()) walks the areas that intersect the
 *    range in IOVA order, removing each that lies wholly inside; the first
 *    that sticks out ends the walk with ENOENT, the ones removed before it
 *    stay removed. Nothing removed is ENOENT too, except for the "unmap
 *    all" form (iova 0, length UINT64_MAX), which always succeeds. The
 *    answer's length is the sum of the removed areas.
 *  - Tables: an IOAS has one software table per HWPT on it: the automatic
 *    one while the device is attached to the IOAS itself (made on attach,
 *    reused on a re-attach to the same IOAS, destroyed on detach, on
 *    replace away and on close), plus one per IOMMU_HWPT_ALLOC on it (until
 *    IOMMU_DESTROY, which is EBUSY while the device is attached to it).
 *    Automatic attach never picks an explicit HWPT. An IOAS with a table
 *    cannot be destroyed (EBUSY).
 *  - GET_PA: EOVERFLOW for iova ULONG_MAX, ENOENT where no area is (checked
 *    first), EOPNOTSUPP for an area of an IOAS without a table, else
 *    out_phys == the pagemap address of the byte the model maps there, and
 *    length == the physically contiguous bytes from there (pagemap walked
 *    page by page), bounded by the input length and by the end of that area
 *    (never running on into an IOVA-adjacent area).
 *  - Pins (pages.c): an iopt_pages object is made by each MAP and shared by
 *    COPY; each of its 4 KiB pages is pinned once while any area on it that
 *    covers the page sits in an IOAS with at least one table (the pfn
 *    reader reuses pins through pages->domains_itree, unfill unpins only
 *    what no other area holds). So the same memory mapped by two MAPs is
 *    pinned twice, and copied once. The expected count of pinned 4 KiB
 *    pages is compared with pins_held() minus the starting baseline.
 *  - Table memory (nr_iommu_pages, only the software tables use it here):
 *    at least one top page per table; exactly that when no IOAS with a
 *    table maps anything; at most, per table, 1 + for each of the 5 levels
 *    under the top the number of distinct IOVA prefixes of the live 4 KiB
 *    pages at that level (shifts 21, 30, 39, 48, 57: 6 levels of 9 bits
 *    above the 12-bit page offset cover 64-bit IOVAs). Emptied tables left
 *    linked exceed the bound.
 *
 * Cost: at most 16 live mappings per IOAS, 2 or 3 IOASes, 2 explicit
 * HWPTs. Every step checks the pins, the table memory (when on), GET_PA of
 * 2 random mappings of every IOAS that has a table (random offset, also
 * inside a page, random input length), one EOPNOTSUPP per IOAS without a
 * table, a random and a just-past-the-end IOVA of each IOAS. Every new
 * mapping of an IOAS with a table is walked with GET_PA, one call per
 * physically contiguous run, so a wrong translation is caught before an
 * unmap unpins by it; after every op that fills a table and every 25 steps,
 * every mapping of every IOAS is walked and probed. Every 50 steps an edu
 * DMA round trip goes through a random mapping at the address GET_PA gave
 * (after checking it against pagemap). HISTORY_TRACE=1 and the seed replay
 * a failure step by step: buffers sit at seeded offsets of a reserved
 * arena, so even automatic IOVAs repeat.
 *
 * Each known bug of the series' first round can be shown on its own:
 *  - HWPT_ALLOC refused (EOPNOTSUPP): HISTORY_CHECK_TABLE=0
 *  - emptied tables not freed: HISTORY_OPS=-hwpt
 *  - a huge page where 4 KiB pages were unmapped (EEXIST):
 *    HISTORY_OPS=-hwpt,-top HISTORY_CHECK_TABLE=0
 *  - a mapping that ends at ULONG_MAX filled with wrong addresses
 *    (batch_to_domain()'s last_iova + 1 wraps to 0):
 *    HISTORY_OPS=-hwpt,-huge HISTORY_CHECK_TABLE=0
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <time.h>

#include "kselftest_harness.h"
#include "vfio_edu.h"

#define H_MAX_IOAS	3
#define H_AREAS		16	/* live mappings per IOAS at most */
#define H_HWPTS		2	/* explicit HWPTs alive at once at most */
#define H_PAGES		(H_MAX_IOAS * H_AREAS)
#define H_BUFS		(H_PAGES + 4)
#define H_HUGE_MAX	12	/* of the guest's 16 huge pages */
#define H_SMALL_PAGES	16	/* 4 KiB pages of a small buffer */
#define H_RELEASE	20	/* % of unused buffers given back */
#define H_SAMPLE	2	/* mappings checked per IOAS each step */
#define H_FULL_EVERY	25	/* steps between checks of every mapping */
#define H_DMA_EVERY	50
#define H_BLOCKS	8	/* 2 MiB blocks per region of fixed IOVAs */
#define H_REGION	(H_BLOCKS * HUGE)
#define H_EMPTIED	8
#define H_NO_IOVA	1	/* an impossible automatic IOVA: none found */

typedef unsigned long long ull;	/* for printing u64 values with %llx */

/*
 * Fixed IOVAs go into few 2 MiB blocks so that they are reused often: at
 * 0 (where automatic IOVAs go too), 1 GiB, 512 GiB (another entry of the
 * table's level-3 table) and the last 16 MiB of the IOVA space (mappings
 * that end at ULONG_MAX: iommufd's batch_to_domain() computes last_iova + 1
 * there, which wraps to 0 on today's series, and GET_PA of the last byte
 * is EOVERFLOW).
 */
static const uint64_t regions[] = {
	0, 1ULL << 30, 1ULL << 39, 0 - (uint64_t)H_REGION,
};

/* The last region only with the "top" switch on */
#define H_NREGIONS(h) ((h)->enabled[K_TOP] ? 4 : 3)

enum {
	K_MAP, K_UNMAP, K_COPY, K_HWPT, K_DESTROY, K_ATTACH, K_DETACH,
	K_REOPEN, K_DMA, K_HUGE, K_TOP, K_NR
};

static const char *const kind_names[K_NR] = {
	"map", "unmap", "copy", "hwpt", "destroy", "attach", "detach",
	"reopen", "dma", "huge", "top",
};

/* Relative weight of each step kind (dma, huge, top: switches only) */
static const unsigned int kind_weights[K_NR] = {
	30, 20, 10, 6, 6, 14, 5, 1, 0, 0, 0,
};

struct hbuf {			/* user memory */
	uint8_t *va;		/* NULL: free slot */
	size_t len;
	bool huge;
	int refs;		/* pages objects on it */
};

struct hpages {			/* an iopt_pages: made by MAP, shared by COPY */
	int buf;		/* -1: free slot */
	size_t off;		/* of its first byte in the buffer */
	size_t len;
	int refs;		/* areas on it */
};

struct harea {			/* a mapping: an iopt_area */
	uint64_t iova, len;
	int pages;
	uint64_t poff;		/* offset of iova in the pages object */
};

struct hioas {
	uint32_t id;
	int nareas;
	struct harea areas[H_AREAS];	/* sorted by IOVA */
	uint64_t emptied[H_EMPTIED];	/* blocks that held 4 KiB leaves */
	int nemptied;
};

struct hhwpt {
	uint32_t id;
	int ioas;
};

enum { DEV_DETACHED, DEV_AUTO, DEV_HWPT };

struct hcounts {
	unsigned long steps, map, unmap, copy, hwpt_alloc, destroy, attach,
		      replace, detach, reopen;
	unsigned long get_pa, enoent, eopnotsupp, pins, table, dma;
	double t_ops, t_get_pa, t_counters, t_dma;	/* seconds spent */
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

struct history {
	struct __test_metadata *md;
	char path[PATH_MAX];
	int devfd, iommufd;
	uint32_t devid;
	struct edu edu;
	int nioas;
	struct hioas ioas[H_MAX_IOAS];
	int nhwpts;
	struct hhwpt hwpts[H_HWPTS];
	int dev_state;
	int dev_ioas;		/* DEV_AUTO: the IOAS of the automatic table */
	uint32_t dev_pt;	/* the HWPT the device is attached to */
	uint8_t *arena;		/* where the buffers go */
	struct hbuf bufs[H_BUFS];
	struct hpages pages[H_PAGES];
	uint64_t seed, rng;
	unsigned long step, steps;
	bool enabled[K_NR];
	bool check_table, thp, huge_ok, filled, trace;
	const char *ops;	/* HISTORY_OPS as given */
	long long pins0, iommu0, vmpin0;
	char op[256];		/* the step's op, for the failure report */
	char call[256];		/* the call being checked */
	struct hcounts n;
};

/* xorshift64*: the history's only source of randomness */
static uint64_t rnd(struct history *h)
{
	h->rng ^= h->rng >> 12;
	h->rng ^= h->rng << 25;
	h->rng ^= h->rng >> 27;
	return h->rng * 2685821657736338717ULL;
}

static uint64_t rnd_below(struct history *h, uint64_t n)
{
	return n ? rnd(h) % n : 0;
}

static bool chance(struct history *h, unsigned int percent)
{
	return rnd_below(h, 100) < percent;
}

static unsigned long env_ul(const char *name, unsigned long def)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : def;
}

static const char *errname(int err)
{
	static char other[32];

	switch (err) {
	case 0: return "success";
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case EINVAL: return "EINVAL";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EBUSY: return "EBUSY";
	case EOVERFLOW: return "EOVERFLOW";
	case ENOSPC: return "ENOSPC";
	case ENOMEM: return "ENOMEM";
	case EPERM: return "EPERM";
	case EFAULT: return "EFAULT";
	}
	snprintf(other, sizeof(other), "errno %d", err);
	return other;
}

/* 0 if the call succeeded, else its errno */
static int h_err(int rc)
{
	return rc ? errno : 0;
}

static void h_summary(struct history *h)
{
	struct hcounts *n = &h->n;

	fprintf(stderr,
		"# history: steps %lu, map %lu, unmap %lu, copy %lu, hwpt_alloc %lu, destroy %lu, attach %lu, replace %lu, detach %lu, reopen %lu; checks: get_pa %lu, enoent %lu, eopnotsupp %lu, pins %lu, table %lu, dma %lu\n",
		n->steps, n->map, n->unmap, n->copy, n->hwpt_alloc, n->destroy,
		n->attach, n->replace, n->detach, n->reopen, n->get_pa,
		n->enoent, n->eopnotsupp, n->pins, n->table, n->dma);
}

static int ntables(struct history *h, int i);
static long long model_pins(struct history *h);

/* Everything the model holds, for the failure report */
static void h_dump(struct history *h)
{
	static const char *const states[] = { "detached", "auto", "hwpt" };
	int i, k;

	fprintf(stderr, "# model: devid %u, device %s", h->devid,
		states[h->dev_state]);
	if (h->dev_state == DEV_AUTO)
		fprintf(stderr, " (auto HWPT %u on ioas[%d])", h->dev_pt,
			h->dev_ioas);
	else if (h->dev_state == DEV_HWPT)
		fprintf(stderr, " (HWPT %u)", h->dev_pt);
	fprintf(stderr, ", %lld pinned pages expected\n", model_pins(h));
	for (i = 0; i < h->nioas; i++) {
		struct hioas *io = &h->ioas[i];

		fprintf(stderr, "#   ioas[%d] id %u: %d table(s), %d mapping(s)\n",
			i, io->id, ntables(h, i), io->nareas);
		for (k = 0; k < io->nareas; k++) {
			struct harea *a = &io->areas[k];
			struct hpages *p = &h->pages[a->pages];
			struct hbuf *b = &h->bufs[p->buf];

			fprintf(stderr,
				"#     iova %#llx..%#llx len %#llx -> va %p (%s buf %d, pages %d +%#llx)\n",
				(ull)a->iova, (ull)(a->iova + a->len - 1),
				(ull)a->len, b->va + p->off + a->poff,
				b->huge ? "huge" : "4K", p->buf, a->pages,
				(ull)a->poff);
		}
	}
	for (i = 0; i < h->nhwpts; i++)
		fprintf(stderr, "#   explicit HWPT %u on ioas[%d]\n",
			h->hwpts[i].id, h->hwpts[i].ioas);
}

/* The first mismatch: report seed, step, op, what differs, the model */
static void __attribute__((format(printf, 2, 3), noreturn))
h_fail(struct history *h, const char *fmt, ...)
{
	struct __test_metadata *_metadata = h->md;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "# MISMATCH seed %llu step %lu\n", (ull)h->seed,
		h->step);
	fprintf(stderr, "#   op: %s\n", h->op);
	if (h->call[0])
		fprintf(stderr, "#   call: %s\n", h->call);
	fprintf(stderr, "#   %s\n", msg);
	fprintf(stderr,
		"#   replay: HISTORY_SEED=%llu HISTORY_STEPS=%lu HISTORY_OPS=%s HISTORY_CHECK_TABLE=%d HISTORY_TRACE=1\n",
		(ull)h->seed, h->step, h->ops ? h->ops : "", h->check_table);
	h_dump(h);
	h_summary(h);
	ASSERT_TRUE(false) {
		TH_LOG("seed %llu step %lu: %s", (ull)h->seed, h->step, msg);
	}
	abort();	/* not reached: ASSERT ends the test */
}

static void h_expect_err(struct history *h, const char *call, int got,
			 int want)
{
	/* HISTORY_TRACE=1: every op's call and its answer (not the checks) */
	if (h->trace && !h->call[0])
		fprintf(stderr, "# step %lu: %s: %s\n", h->step, h->op,
			errname(got));
	if (got != want)
		h_fail(h, "%s: expected %s, got %s", call, errname(want),
		       errname(got));
}

/* Buffers and pages objects */

static int live_huge_bufs(struct history *h)
{
	int b, n = 0;

	for (b = 0; b < H_BUFS; b++)
		n += h->bufs[b].va && h->bufs[b].huge;
	return n;
}

/*
 * Buffers live in slots of a reserved, 2 MiB-aligned arena, at offsets
 * drawn from the seed: automatic IOVAs follow the alignment of the user
 * address, so with ASLR's addresses a replay would take other IOVAs. A 4
 * KiB-page buffer starts at a random page of its slot, a huge one at the
 * slot's start; inaccessible memory lies between buffers.
 */
#define H_SLOT		(2 * HUGE)

static void arena_init(struct history *h)
{
	uint8_t *res = mmap(NULL, H_BUFS * H_SLOT + HUGE, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (res == MAP_FAILED)
		h_fail(h, "cannot reserve the buffer arena");
	h->arena = (uint8_t *)(((uintptr_t)res + HUGE - 1) & ~(HUGE - 1));
}

/* Give a buffer's memory back, keeping its range reserved */
static void arena_release(uint8_t *va, size_t len)
{
	mmap(va, len, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
}

static void buf_release(struct history *h, int b)
{
	arena_release(h->bufs[b].va, h->bufs[b].len);
	h->bufs[b].va = NULL;
}

/*
 * A populated buffer of H_SMALL_PAGES 4 KiB pages or one huge page, or -1
 * when there are no huge pages. Populating and giving back memory costs
 * milliseconds under KASAN, so a buffer nothing maps is mostly kept and
 * handed out again; H_RELEASE % of them go back, so that mappings also
 * get new physical pages.
 */
static int buf_get(struct history *h, bool huge)
{
	size_t len = huge ? HUGE : H_SMALL_PAGES * PAGE;
	int b, n = 0, pick = -1, slot = -1;
	uint8_t *va;

	if (huge && (!h->huge_ok || !h->enabled[K_HUGE]))
		return -1;
	for (b = 0; b < H_BUFS; b++) {
		if (!h->bufs[b].va) {
			if (slot < 0)
				slot = b;
		} else if (!h->bufs[b].refs && h->bufs[b].huge == huge &&
			   !rnd_below(h, ++n)) {
			pick = b;
		}
	}
	if (pick >= 0)
		return pick;
	if (huge && live_huge_bufs(h) >= H_HUGE_MAX)
		return -1;
	/* No free slot: give back an unused buffer of the other kind */
	for (b = 0; b < H_BUFS && slot < 0; b++)
		if (!h->bufs[b].refs) {
			buf_release(h, b);
			slot = b;
		}
	if (slot < 0)
		h_fail(h, "model: no free buffer slot");
	va = h->arena + slot * H_SLOT;
	if (!huge)
		va += rnd_below(h, (H_SLOT - len) / PAGE + 1) * PAGE;
	if (mmap(va, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
		 (huge ? MAP_HUGETLB | MAP_HUGE_2M : 0), -1, 0) == MAP_FAILED) {
		arena_release(va, len);
		if (!huge)
			h_fail(h, "cannot allocate %zu bytes", len);
		return -1;
	}
	populate(va, len, huge);
	h->bufs[slot] = (struct hbuf){ .va = va, .len = len, .huge = huge };
	return slot;
}

/* A buffer that nothing maps any more: kept for reuse or given back */
static void buf_put(struct history *h, int b)
{
	if (b < 0 || !h->bufs[b].va || h->bufs[b].refs)
		return;
	if (chance(h, H_RELEASE))
		buf_release(h, b);
}

/* A random range of 1 to H_SMALL_PAGES pages of a small buffer */
static size_t small_range(struct history *h, size_t *off)
{
	size_t n = 1 + rnd_below(h, H_SMALL_PAGES);

	*off = rnd_below(h, H_SMALL_PAGES - n + 1) * PAGE;
	return n * PAGE;
}

/* A random buffer some mapping uses, or -1 */
static int buf_pick_live(struct history *h, bool huge_only)
{
	int b, n = 0, pick = -1;

	for (b = 0; b < H_BUFS; b++)
		if (h->bufs[b].va && h->bufs[b].refs &&
		    (!huge_only || h->bufs[b].huge) && !rnd_below(h, ++n))
			pick = b;
	return pick;
}

static int pages_new(struct history *h, int b, size_t off, size_t len)
{
	int p;

	for (p = 0; p < H_PAGES; p++)
		if (h->pages[p].buf < 0)
			break;
	if (p == H_PAGES)
		h_fail(h, "model: no free pages slot");
	h->pages[p] = (struct hpages){ .buf = b, .off = off, .len = len };
	h->bufs[b].refs++;
	return p;
}

static void pages_put(struct history *h, int p)
{
	struct hpages *pg = &h->pages[p];
	int b = pg->buf;

	if (--pg->refs)
		return;
	pg->buf = -1;
	h->bufs[b].refs--;
	buf_put(h, b);
}

static uint8_t *area_va(struct history *h, struct harea *a)
{
	struct hpages *p = &h->pages[a->pages];

	return h->bufs[p->buf].va + p->off + a->poff;
}

/* Areas */

static uint64_t area_last(struct harea *a)
{
	return a->iova + (a->len - 1);
}

/* The area holding @iova, or -1 */
static int area_find(struct hioas *io, uint64_t iova)
{
	struct harea *a;
	int k;

	for (k = 0; k < io->nareas; k++) {
		a = &io->areas[k];
		if (a->iova <= iova && iova <= area_last(a))
			return k;
	}
	return -1;
}

static bool overlaps(struct hioas *io, uint64_t first, uint64_t last)
{
	struct harea *a;
	int k;

	for (k = 0; k < io->nareas; k++) {
		a = &io->areas[k];
		if (a->iova <= last && first <= area_last(a))
			return true;
	}
	return false;
}

static void area_add(struct history *h, int i, uint64_t iova, uint64_t len,
		     int p, uint64_t poff)
{
	struct hioas *io = &h->ioas[i];
	int k = io->nareas;

	if (k == H_AREAS)
		h_fail(h, "model: ioas[%d] full", i);
	while (k && io->areas[k - 1].iova > iova) {
		io->areas[k] = io->areas[k - 1];
		k--;
	}
	io->areas[k] = (struct harea){ .iova = iova, .len = len, .pages = p,
				       .poff = poff };
	io->nareas++;
	h->pages[p].refs++;
}

/*
 * Did the area use 4 KiB leaves in a table? Only a 2 MiB-aligned run of
 * whole huge pages at a 2 MiB-aligned IOVA gets 2 MiB leaves.
 */
static bool area_small_leaves(struct history *h, struct harea *a)
{
	struct hpages *p = &h->pages[a->pages];

	return !h->bufs[p->buf].huge || a->iova % HUGE || a->len % HUGE ||
	       (uintptr_t)area_va(h, a) % HUGE;
}

static void emptied_push(struct hioas *io, uint64_t block)
{
	int e;

	for (e = 0; e < io->nemptied; e++)
		if (io->emptied[e] == block)
			return;
	if (io->nemptied < H_EMPTIED)
		io->emptied[io->nemptied++] = block;
	else
		io->emptied[block / HUGE % H_EMPTIED] = block;
}

static void area_del(struct history *h, int i, int k)
{
	struct hioas *io = &h->ioas[i];
	struct harea a = io->areas[k];

	/* Remember the 2 MiB blocks that held 4 KiB leaves (bug 1) */
	if (area_small_leaves(h, &a)) {
		emptied_push(io, a.iova & ~(HUGE - 1));
		emptied_push(io, area_last(&a) & ~(HUGE - 1));
	}
	memmove(&io->areas[k], &io->areas[k + 1],
		(io->nareas - k - 1) * sizeof(a));
	io->nareas--;
	pages_put(h, a.pages);
}

static void ioas_drop_all(struct history *h, int i)
{
	while (h->ioas[i].nareas)
		area_del(h, i, h->ioas[i].nareas - 1);
	h->ioas[i].nemptied = 0;
}

/* Tables: one per HWPT on the IOAS */
static int ntables(struct history *h, int i)
{
	int n = h->dev_state == DEV_AUTO && h->dev_ioas == i, e;

	for (e = 0; e < h->nhwpts; e++)
		n += h->hwpts[e].ioas == i;
	return n;
}

static int hwpt_find(struct history *h, uint32_t id)
{
	int e;

	for (e = 0; e < h->nhwpts; e++)
		if (h->hwpts[e].id == id)
			return e;
	return -1;
}

/* Is @id one of the objects the model knows alive in the iommufd? */
static bool id_live(struct history *h, uint32_t id)
{
	int i;

	if (id == h->devid || hwpt_find(h, id) >= 0 ||
	    (h->dev_state == DEV_AUTO && id == h->dev_pt))
		return true;
	for (i = 0; i < h->nioas; i++)
		if (h->ioas[i].id == id)
			return true;
	return false;
}

/*
 * The pins iommufd holds: per pages object, each page covered by an area
 * in an IOAS with a table, once (see the top of the file).
 */
static long long model_pins(struct history *h)
{
	uint8_t mark[HUGE / PAGE];
	long long total = 0;
	int p, i, k;
	size_t n, j;

	for (p = 0; p < H_PAGES; p++) {
		if (h->pages[p].buf < 0)
			continue;
		n = h->pages[p].len / PAGE;
		memset(mark, 0, sizeof(mark));
		for (i = 0; i < h->nioas; i++) {
			if (!ntables(h, i))
				continue;
			for (k = 0; k < h->ioas[i].nareas; k++) {
				struct harea *a = &h->ioas[i].areas[k];

				if (a->pages != p)
					continue;
				for (j = a->poff / PAGE;
				     j < (a->poff + a->len) / PAGE && j < n; j++)
					mark[j] = 1;
			}
		}
		for (j = 0; j < n && j < HUGE / PAGE; j++)
			total += mark[j];
	}
	return total;
}

/* Distinct values of iova >> shift over the live pages of an IOAS */
static uint64_t prefixes(struct hioas *io, unsigned int shift)
{
	uint64_t n = 0, s, e, next = 0;
	bool any = false;
	int k;

	/* Areas are sorted and disjoint: their prefix ranges only grow */
	for (k = 0; k < io->nareas; k++) {
		s = io->areas[k].iova >> shift;
		e = area_last(&io->areas[k]) >> shift;
		if (any && s < next)
			s = next;
		if (any && e < s)
			continue;
		n += e - s + 1;
		next = e + 1;
		any = true;
	}
	return n;
}

/* Upper bound of the pages all tables may use (see the top of the file) */
static long long table_bound(struct history *h)
{
	long long total = 0, per;
	unsigned int level;
	int i, nt;

	for (i = 0; i < h->nioas; i++) {
		nt = ntables(h, i);
		if (!nt)
			continue;
		per = 1;
		for (level = 0; level < 5; level++)
			per += prefixes(&h->ioas[i], 21 + 9 * level);
		total += nt * per;
	}
	return total;
}

static int total_tables(struct history *h)
{
	int i, n = 0;

	for (i = 0; i < h->nioas; i++)
		n += ntables(h, i);
	return n;
}

/* Checks */

#define H_PM_PRESENT	(1ULL << 63)
#define H_PM_PFN	((1ULL << 55) - 1)

/*
 * The pagemap entries of @n pages from the page of @va, in one read (under
 * KASAN one read costs far more than a GET_PA, whatever its length).
 */
static void pagemap_read(struct history *h, uint8_t *va, size_t n,
			 uint64_t *ent)
{
	static int fd = -1;

	if (fd < 0)
		fd = open("/proc/self/pagemap", O_RDONLY);
	if (pread(fd, ent, n * 8, (uintptr_t)va / PAGE * 8) != (ssize_t)(n * 8))
		h_fail(h, "pagemap read of %zu pages at %p failed", n, va);
}

/*
 * The model's answer for the byte at @va, the pagemap entries of its page
 * and those after it in @ent: the physical address (what pagemap_pa()
 * gives) and the bytes physically contiguous from there, page by page, at
 * most @limit.
 */
static void pagemap_expect(uint64_t *ent, size_t n, uint8_t *va,
			   uint64_t limit, uint64_t *pa, uint64_t *len)
{
	uint64_t run = PAGE - (uintptr_t)va % PAGE;
	size_t j;

	*pa = ent[0] & H_PM_PRESENT ?
	      (ent[0] & H_PM_PFN) * PAGE + (uintptr_t)va % PAGE : 0;
	for (j = 1; j < n && run < limit; j++) {
		if (!(ent[j] & H_PM_PRESENT) ||
		    (ent[j] & H_PM_PFN) != (ent[j - 1] & H_PM_PFN) + 1)
			break;
		run += PAGE;
	}
	*len = run < limit ? run : limit;
}

/*
 * GET_PA at @iova of IOAS @i, with the model's answer; its length or 0.
 * @ent: the pagemap entries of the whole area holding @iova, or NULL to
 * read what the answer needs.
 */
static uint64_t check_get_pa_ent(struct history *h, int i, uint64_t iova,
				 uint64_t inlen, uint64_t *ent)
{
	struct hioas *io = &h->ioas[i];
	uint64_t len = inlen, pa = 0, want_pa, want_len, limit;
	uint64_t mine[HUGE / PAGE];
	int k = area_find(io, iova), want, err;
	size_t first, n;
	struct harea *a;
	uint8_t *va;

	if (iova == ULONG_MAX)
		want = EOVERFLOW;
	else if (k < 0)
		want = ENOENT;
	else if (!ntables(h, i))
		want = EOPNOTSUPP;
	else
		want = 0;
	snprintf(h->call, sizeof(h->call),
		 "IOMMU_IOAS_NOIOMMU_GET_PA ioas[%d]=%u iova %#llx length %#llx",
		 i, io->id, (ull)iova, (ull)inlen);
	err = h_err(get_pa(h->iommufd, io->id, iova, &len, &pa));
	h_expect_err(h, "GET_PA", err, want);
	if (err == ENOENT)
		h->n.enoent++;
	else if (err == EOPNOTSUPP)
		h->n.eopnotsupp++;
	if (err) {
		h->call[0] = 0;
		return 0;
	}
	a = &io->areas[k];
	va = area_va(h, a) + (iova - a->iova);
	limit = area_last(a) - iova + 1;
	if (limit > inlen)
		limit = inlen;
	/* Pages from the one of iova to the one of its last byte asked */
	first = (iova - a->iova) / PAGE;
	n = (iova - a->iova + limit - 1) / PAGE - first + 1;
	if (!ent) {
		pagemap_read(h, va, n, mine);
		ent = mine;
	} else {
		ent += first;
	}
	pagemap_expect(ent, n, va, limit, &want_pa, &want_len);
	if (pa != want_pa || len != want_len)
		h_fail(h, "GET_PA: expected phys %#llx length %#llx (va %p), got phys %#llx length %#llx",
		       (ull)want_pa, (ull)want_len, va, (ull)pa, (ull)len);
	h->n.get_pa++;
	h->call[0] = 0;
	return len;
}

static uint64_t check_get_pa(struct history *h, int i, uint64_t iova,
			     uint64_t inlen)
{
	return check_get_pa_ent(h, i, iova, inlen, NULL);
}

/*
 * Walk area @k of IOAS @i with GET_PA, one call per physically contiguous
 * run: every page's address is checked, not only a sample. Done on every
 * new mapping of an IOAS with a table and after every fill, so that a wrong
 * translation is caught before an unmap unpins by it.
 */
static void check_walk(struct history *h, int i, int k)
{
	struct harea a = h->ioas[i].areas[k];
	uint64_t iova = a.iova, len, ent[HUGE / PAGE];

	if (!ntables(h, i))
		return;
	pagemap_read(h, area_va(h, &a), a.len / PAGE, ent);
	while (iova <= area_last(&a) && iova != ULONG_MAX) {
		len = check_get_pa_ent(h, i, iova, UINT64_MAX, ent);
		if (!len || iova + len < iova)
			break;
		iova += len;
	}
}

/* Walk the area of IOAS @i at @iova (just made by MAP or COPY) */
static void check_walk_at(struct history *h, int i, uint64_t iova)
{
	int k = area_find(&h->ioas[i], iova);

	if (k >= 0)
		check_walk(h, i, k);
}

/* A random input length for GET_PA at a point @rest bytes before the end */
static uint64_t pick_len(struct history *h, uint64_t rest)
{
	switch (rnd_below(h, 5)) {
	case 0:
		return 1 + rnd_below(h, PAGE);
	case 1:
		return rest;
	case 2:
		return UINT64_MAX;
	case 3:
		return 1 + rnd_below(h, 2 * rest);
	default:
		return rest + PAGE;
	}
}

static uint64_t random_iova(struct history *h)
{
	uint64_t iova = regions[rnd_below(h, H_NREGIONS(h))] +
			rnd_below(h, H_REGION / PAGE) * PAGE;

	return iova + (chance(h, 50) ? rnd_below(h, PAGE) : 0);
}

/*
 * GET_PA over IOAS @i: @all its mappings or a sample, at random offsets
 * (also inside a page); one EOPNOTSUPP only if it has no table; a random
 * IOVA and one just past the end of a mapping.
 */
static void check_ioas(struct history *h, int i, bool all)
{
	struct hioas *io = &h->ioas[i];
	int j, k, n = all ? io->nareas : H_SAMPLE;
	struct harea *a;
	uint64_t off;

	if (!ntables(h, i) && n > 1)
		n = 1;
	for (j = 0; j < n && io->nareas; j++) {
		k = all ? j : (int)rnd_below(h, io->nareas);
		if (all)
			check_walk(h, i, k);
		a = &io->areas[k];
		off = rnd_below(h, a->len / PAGE) * PAGE;
		if (chance(h, 50))
			off += rnd_below(h, PAGE);
		check_get_pa(h, i, a->iova + off, pick_len(h, a->len - off));
	}
	if (io->nareas) {
		a = &io->areas[rnd_below(h, io->nareas)];
		if (area_last(a) != ULONG_MAX)
			check_get_pa(h, i, area_last(a) + 1, PAGE);
	}
	check_get_pa(h, i, random_iova(h), 1 + rnd_below(h, HUGE));
}

/*
 * What pins_held() and vmstat("nr_iommu_pages") give, with one stat_refresh
 * and one read of /proc/vmstat instead of three of each: under KASAN each
 * costs milliseconds, and this runs after every step.
 */
static void vm_counters(long long *pins, long long *iommu_pages)
{
	long long acquired = -1, released = -1;
	char line[256];
	FILE *f;

	*iommu_pages = -1;
	write_file("/proc/sys/vm/stat_refresh", "1");
	f = fopen("/proc/vmstat", "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "nr_foll_pin_acquired ", 21))
			acquired = strtoll(line + 21, NULL, 10);
		else if (!strncmp(line, "nr_foll_pin_released ", 21))
			released = strtoll(line + 21, NULL, 10);
		else if (!strncmp(line, "nr_iommu_pages ", 15))
			*iommu_pages = strtoll(line + 15, NULL, 10);
	}
	if (f)
		fclose(f);
	*pins = acquired - released;
}

static void check_pins(struct history *h, long long pins)
{
	long long want = model_pins(h), got = pins - h->pins0;

	snprintf(h->call, sizeof(h->call), "pins_held() - baseline");
	if (got != want)
		h_fail(h, "pins: expected %lld pinned 4 KiB pages, got %lld",
		       want, got);
	h->n.pins++;
	h->call[0] = 0;
}

/* The software tables' memory, from nr_iommu_pages */
static void check_table(struct history *h, long long iommu_pages)
{
	long long got = iommu_pages - h->iommu0;
	long long tables = total_tables(h), bound = table_bound(h);
	bool empty = true;
	int i;

	if (!h->check_table)
		return;
	for (i = 0; i < h->nioas; i++)
		if (ntables(h, i) && h->ioas[i].nareas)
			empty = false;
	snprintf(h->call, sizeof(h->call), "nr_iommu_pages - baseline");
	if (empty && got != tables)
		h_fail(h, "table memory: nothing mapped in the %lld table(s): expected exactly %lld page(s) (each table's top page), got %lld",
		       tables, tables, got);
	if (got < tables || got > bound)
		h_fail(h, "table memory: expected %lld..%lld pages for %lld table(s) and the live mappings, got %lld",
		       tables, bound, tables, got);
	h->n.table++;
	h->call[0] = 0;
}

/* Pins and table memory against the model */
static void check_counters(struct history *h)
{
	long long pins, iommu_pages;

	vm_counters(&pins, &iommu_pages);
	check_pins(h, pins);
	check_table(h, iommu_pages);
}

static void check_all(struct history *h, bool all)
{
	double t = now_s();
	int i;

	for (i = 0; i < h->nioas; i++)
		check_ioas(h, i, all);
	h->n.t_get_pa += now_s() - t;
	t = now_s();
	check_counters(h);
	h->n.t_counters += now_s() - t;
}

/* An edu DMA round trip through a mapping at the address GET_PA gives */
static void do_dma(struct history *h)
{
	int i, k, cand[H_MAX_IOAS], nc = 0;
	uint64_t iova, len = PAGE, pa = 0;
	struct harea *a;
	uint8_t *va;

	for (i = 0; i < h->nioas; i++)
		if (ntables(h, i) && h->ioas[i].nareas)
			cand[nc++] = i;
	if (!nc)
		return;
	i = cand[rnd_below(h, nc)];
	k = rnd_below(h, h->ioas[i].nareas);
	a = &h->ioas[i].areas[k];
	iova = a->iova + rnd_below(h, a->len / PAGE) * PAGE;
	va = area_va(h, a) + (iova - a->iova);
	snprintf(h->op, sizeof(h->op),
		 "edu DMA round trip through ioas[%d]=%u iova %#llx (va %p)",
		 i, h->ioas[i].id, (ull)iova, va);
	check_get_pa(h, i, iova, PAGE);
	if (get_pa(h->iommufd, h->ioas[i].id, iova, &len, &pa) ||
	    len != PAGE || pa != pagemap_pa(va))
		h_fail(h, "GET_PA for the DMA: length %#llx phys %#llx",
		       (ull)len, (ull)pa);
	if (!edu_round_trip(&h->edu, va, pa, va + EDU_DMA_LEN,
			    pa + EDU_DMA_LEN, (uint8_t)h->step))
		h_fail(h, "edu DMA round trip at phys %#llx: data differ",
		       (ull)pa);
	h->n.dma++;
}

/* MAP */

static uint64_t align_up(uint64_t v, uint64_t a, bool *ovf)
{
	uint64_t r = (v + a - 1) & ~(a - 1);

	*ovf = r < v;
	return r;
}

/*
 * iopt_alloc_iova(): the lowest aligned IOVA from 4 KiB on whose range
 * ends below ULONG_MAX - 4 KiB and overlaps no area; H_NO_IOVA if none.
 */
static uint64_t predict_auto_iova(struct history *h, int i, uint64_t uptr,
				  uint64_t len)
{
	struct hioas *io = &h->ioas[i];
	uint64_t align = 1, best = H_NO_IOVA, c, start;
	bool ovf;
	int k;

	while (align < len)
		align <<= 1;
	if (uptr && align > (1ULL << __builtin_ctzll(uptr)))
		align = 1ULL << __builtin_ctzll(uptr);
	if (align >= (h->thp ? HUGE : PAGE))
		align = h->thp ? HUGE : PAGE;
	for (k = -1; k < io->nareas; k++) {
		start = k < 0 ? PAGE : area_last(&io->areas[k]) + 1;
		if (k >= 0 && !start)
			continue;
		c = align_up(start, align, &ovf);
		if (ovf || c + (len - 1) < c ||
		    c + (len - 1) > ULONG_MAX - PAGE ||
		    overlaps(io, c, c + len - 1))
			continue;
		if (best == H_NO_IOVA || c < best)
			best = c;
	}
	return best;
}

/* MAP @len bytes of buffer @b from @off into IOAS @i; checks, records */
static bool do_map(struct history *h, int i, int b, size_t off, size_t len,
		   bool fixed, uint64_t iova)
{
	struct hioas *io = &h->ioas[i];
	uint8_t *va = h->bufs[b].va + off;
	uint64_t want_iova = iova, got_iova = iova;
	int want = 0, err;

	if (fixed) {
		if (iova + (len - 1) < iova)
			want = EOVERFLOW;
		else if (overlaps(io, iova, iova + (len - 1)))
			want = EEXIST;
	} else {
		want_iova = predict_auto_iova(h, i, (uintptr_t)va, len);
		if (want_iova == H_NO_IOVA)
			want = ENOSPC;
	}
	if (!want && io->nareas == H_AREAS)
		return false;	/* no room in the model: not issued */
	snprintf(h->op, sizeof(h->op),
		 "IOMMU_IOAS_MAP%s ioas[%d]=%u iova %#llx length %#zx va %p (%s buf %d + %#zx)",
		 fixed ? " FIXED_IOVA" : "", i, io->id,
		 (ull)(fixed ? iova : want_iova), len, va,
		 h->bufs[b].huge ? "huge" : "4K", b, off);
	h->n.map++;
	err = h_err(ioas_map(h->iommufd, io->id, va, len, &got_iova, fixed));
	h_expect_err(h, "IOMMU_IOAS_MAP", err, want);
	if (err)
		return false;
	if (got_iova != want_iova)
		h_fail(h, "IOMMU_IOAS_MAP: expected IOVA %#llx, got %#llx",
		       (ull)want_iova, (ull)got_iova);
	area_add(h, i, got_iova, len, pages_new(h, b, off, len), 0);
	check_walk_at(h, i, got_iova);
	return true;
}

/* The start of a random 2 MiB block of the fixed-IOVA regions */
static uint64_t random_block(struct history *h, int max_block)
{
	return regions[rnd_below(h, H_NREGIONS(h))] +
	       rnd_below(h, max_block) * HUGE;
}

/* A random fixed IOVA for @len bytes, inside one region */
static uint64_t fixed_iova(struct history *h, uint64_t len)
{
	uint64_t base = regions[rnd_below(h, H_NREGIONS(h))];
	uint64_t off = rnd_below(h, H_REGION / PAGE) * PAGE;

	if (chance(h, 25))
		off &= ~(HUGE - 1);
	/* In the top region, often up to the last byte of the IOVA space */
	if (off + len > H_REGION || (base == regions[3] && chance(h, 30)))
		off = H_REGION - len;
	return base + off;
}

/*
 * A block for a huge page: mostly one that held 4 KiB leaves and is empty
 * now (today's series keeps the emptied level-0 table linked there: the
 * huge leaf then fails with EEXIST).
 */
static uint64_t huge_block(struct history *h, int i)
{
	struct hioas *io = &h->ioas[i];
	uint64_t block;
	int e;

	if (io->nemptied && chance(h, 60)) {
		e = rnd_below(h, io->nemptied);
		block = io->emptied[e];
		io->emptied[e] = io->emptied[--io->nemptied];
		return block;
	}
	return random_block(h, H_BLOCKS);
}

static void map_small(struct history *h, int i, bool fixed)
{
	int b = buf_get(h, false);
	size_t off, len = small_range(h, &off);

	do_map(h, i, b, off, len, fixed, fixed ? fixed_iova(h, len) : 0);
	buf_put(h, b);
}

/* Map a subrange of memory some mapping already uses (a new pages object) */
static void map_again(struct history *h, int i, bool huge_only)
{
	int b = buf_pick_live(h, huge_only);
	size_t np, off, len;
	bool fixed = chance(h, 50);

	if (b < 0)
		return map_small(h, i, fixed);
	np = h->bufs[b].len / PAGE;
	off = rnd_below(h, np);
	len = (1 + rnd_below(h, np - off)) * PAGE;
	off *= PAGE;
	do_map(h, i, b, off, len, fixed, fixed ? fixed_iova(h, len) : 0);
}

static void map_huge(struct history *h, int i, bool fixed)
{
	int b = buf_get(h, true);

	if (b < 0)
		return map_again(h, i, true);
	do_map(h, i, b, 0, HUGE, fixed, fixed ? huge_block(h, i) : 0);
	buf_put(h, b);
}

/* 4 KiB pages up to a 2 MiB boundary, a huge page from there: two MAPs */
static void map_mix(struct history *h, int i)
{
	uint64_t boundary = random_block(h, H_BLOCKS - 1) + HUGE;
	int b = buf_get(h, false), hb;
	size_t off, len = small_range(h, &off);

	do_map(h, i, b, off, len, true, boundary - len);
	buf_put(h, b);
	hb = buf_get(h, true);
	if (hb < 0)
		return;
	do_map(h, i, hb, 0, HUGE, true, boundary);
	buf_put(h, hb);
}

/*
 * The two halves of one huge page at adjacent IOVAs: physically
 * contiguous, yet GET_PA of the first half must stop at its end.
 */
static void map_halves(struct history *h, int i)
{
	uint64_t iova = random_block(h, H_BLOCKS);
	int b = buf_get(h, true);
	bool first;

	if (b < 0)
		return map_again(h, i, true);
	first = do_map(h, i, b, 0, HUGE / 2, true, iova);
	if (do_map(h, i, b, HUGE / 2, HUGE / 2, true, iova + HUGE / 2) &&
	    first)
		check_get_pa(h, i, iova + rnd_below(h, HUGE / 2), UINT64_MAX);
	buf_put(h, b);
}

/* A fixed MAP over a live mapping: EEXIST, nothing changes */
static void map_over_live(struct history *h, int i)
{
	struct hioas *io = &h->ioas[i];
	uint64_t iova, back;
	size_t n = 1 + rnd_below(h, 4);
	struct harea *a;
	int b;

	if (!io->nareas)
		return map_small(h, i, true);
	a = &io->areas[rnd_below(h, io->nareas)];
	iova = a->iova + rnd_below(h, a->len / PAGE) * PAGE;
	back = rnd_below(h, n) * PAGE;
	iova = iova >= back ? iova - back : 0;
	if (iova + (n * PAGE - 1) < iova)
		iova = 0 - n * PAGE;
	b = buf_pick_live(h, false);
	if (b < 0)
		b = buf_get(h, false);
	do_map(h, i, b, 0, n * PAGE, true, iova);
	buf_put(h, b);
}

static bool op_map(struct history *h)
{
	int i = rnd_below(h, h->nioas), v = rnd_below(h, 100);

	/* Full: only what fails */
	if (h->ioas[i].nareas + 2 > H_AREAS)
		v = 80;
	if (v < 16)
		map_small(h, i, false);
	else if (v < 24)
		map_huge(h, i, false);
	else if (v < 42)
		map_small(h, i, true);
	else if (v < 58)
		map_huge(h, i, true);
	else if (v < 65)
		map_mix(h, i);
	else if (v < 72)
		map_halves(h, i);
	else if (v < 86)
		map_over_live(h, i);
	else
		map_again(h, i, false);
	return true;
}

/* UNMAP */

static int ioas_unmap_len(int iommufd, uint32_t ioas, uint64_t iova,
			  uint64_t *len)
{
	struct iommu_ioas_unmap cmd = {
		.size = sizeof(cmd), .ioas_id = ioas, .iova = iova,
		.length = *len,
	};
	int rc = ioctl(iommufd, IOMMU_IOAS_UNMAP, &cmd);

	*len = cmd.length;
	return rc;
}

/* UNMAP [iova, iova + length) of IOAS @i as iopt_unmap_iova_range() does */
static void do_unmap(struct history *h, int i, uint64_t iova, uint64_t length)
{
	struct hioas *io = &h->ioas[i];
	bool all = iova == 0 && length == UINT64_MAX;
	uint64_t last = iova + (length - 1), bytes = 0, got = length;
	int rm[H_AREAS], nrm = 0, want = 0, err, k;

	if (!all && (iova >= ULONG_MAX || length >= ULONG_MAX))
		want = EOVERFLOW;
	else if (!length)
		want = EINVAL;
	else if (!all && last < iova)
		want = EOVERFLOW;
	if (all)
		last = ULONG_MAX;
	for (k = 0; !want && k < io->nareas; k++) {
		struct harea *a = &io->areas[k];

		if (area_last(a) < iova)
			continue;
		if (a->iova > last)
			break;
		if (a->iova < iova || area_last(a) > last) {
			want = ENOENT;	/* the ones before it stay unmapped */
			break;
		}
		rm[nrm++] = k;
		bytes += a->len;
	}
	if (!want && !all && !bytes)
		want = ENOENT;
	snprintf(h->op, sizeof(h->op),
		 "IOMMU_IOAS_UNMAP ioas[%d]=%u iova %#llx length %#llx",
		 i, io->id, (ull)iova, (ull)length);
	h->n.unmap++;
	err = h_err(ioas_unmap_len(h->iommufd, io->id, iova, &got));
	h_expect_err(h, "IOMMU_IOAS_UNMAP", err, want);
	if (!err && got != bytes)
		h_fail(h, "IOMMU_IOAS_UNMAP: expected %#llx bytes unmapped, got %#llx",
		       (ull)bytes, (ull)got);
	while (nrm)
		area_del(h, i, rm[--nrm]);
}

static bool op_unmap(struct history *h)
{
	int i = rnd_below(h, h->nioas), v = rnd_below(h, 100), j, k = 0, m;
	struct harea *a = NULL, *z;
	uint64_t start, last, np = 0;
	struct hioas *io;

	/* Mostly an IOAS that maps something */
	for (j = 0; j < h->nioas && !h->ioas[i].nareas && chance(h, 90); j++)
		i = (i + 1) % h->nioas;
	io = &h->ioas[i];
	if (!io->nareas && v < 70)
		v = 70;
	if (v < 70) {
		k = rnd_below(h, io->nareas);
		a = &io->areas[k];
		np = a->len / PAGE;
	}
	if (v < 35) {
		/* One whole mapping */
		do_unmap(h, i, a->iova, a->len);
	} else if (v < 48) {
		/* Several at once, holes between them included */
		m = k + rnd_below(h, 4);
		if (m >= io->nareas)
			m = io->nareas - 1;
		z = &io->areas[m];
		do_unmap(h, i, a->iova, area_last(z) - a->iova + 1);
	} else if (v < 63) {
		/* Part of a mapping, maybe running on into later ones */
		start = a->iova + rnd_below(h, np) * PAGE;
		last = a->iova + (rnd_below(h, np) + 1) * PAGE - 1;
		if (last < start)
			last = area_last(a);
		if (chance(h, 40)) {
			m = k + rnd_below(h, 3);
			if (m >= io->nareas)
				m = io->nareas - 1;
			z = &io->areas[m];
			last = z->iova + (rnd_below(h, z->len / PAGE) + 1) *
			       PAGE - 1;
			if (last < start)
				last = area_last(z);
		}
		do_unmap(h, i, start, last - start + 1);
	} else if (v < 70) {
		/* Whole mapping with unaligned slack on both sides */
		start = a->iova;
		if (start >= PAGE)
			start -= rnd_below(h, PAGE);
		last = area_last(a);
		if (last + PAGE > last)
			last += rnd_below(h, PAGE);
		do_unmap(h, i, start, last - start + 1);
	} else if (v < 85) {
		/* Anywhere in the fixed-IOVA regions (mostly holes) */
		start = random_iova(h) & ~(PAGE - 1);
		np = 1 + rnd_below(h, 16);
		if (start + np * PAGE - 1 < start)
			np = (0 - start) / PAGE;
		do_unmap(h, i, start, np * PAGE);
	} else if (v < 95 && io->nareas) {
		/* Just past the end of a mapping */
		a = &io->areas[rnd_below(h, io->nareas)];
		if (area_last(a) == ULONG_MAX)
			do_unmap(h, i, a->iova - PAGE, PAGE);
		else
			do_unmap(h, i, area_last(a) + 1, PAGE);
	} else {
		do_unmap(h, i, 0, UINT64_MAX);
	}
	return true;
}

/* COPY */

static int h_copy(int iommufd, uint32_t dst, uint64_t *dst_iova, uint32_t src,
		  uint64_t src_iova, uint64_t len, bool fixed)
{
	struct iommu_ioas_copy cmd = {
		.size = sizeof(cmd),
		.flags = (fixed ? IOMMU_IOAS_MAP_FIXED_IOVA : 0) |
			 IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.dst_ioas_id = dst,
		.src_ioas_id = src,
		.length = len,
		.dst_iova = *dst_iova,
		.src_iova = src_iova,
	};
	int rc = ioctl(iommufd, IOMMU_IOAS_COPY, &cmd);

	*dst_iova = cmd.dst_iova;
	return rc;
}

static bool op_copy(struct history *h)
{
	int si = rnd_below(h, h->nioas), di, j, k, m, nel = 0, want = 0, err;
	struct { int pages; uint64_t poff, len; } el[H_AREAS];
	uint64_t start, last, cur, len, diova = 0, got;
	struct hioas *src, *dst;
	struct harea *a;
	bool fixed = chance(h, 65);

	for (j = 0; j < h->nioas && !h->ioas[si].nareas; j++)
		si = (si + 1) % h->nioas;
	src = &h->ioas[si];
	if (!src->nareas)
		return false;
	di = chance(h, 80) ? (si + 1 + rnd_below(h, h->nioas - 1)) % h->nioas :
			     si;
	dst = &h->ioas[di];

	/* A range over IOVA-contiguous areas, maybe a subrange */
	k = rnd_below(h, src->nareas);
	a = &src->areas[k];
	for (m = k; m + 1 < src->nareas && m - k < 3; m++)
		if (src->areas[m + 1].iova != area_last(&src->areas[m]) + 1)
			break;
	m = k + rnd_below(h, m - k + 1);
	start = a->iova;
	if (chance(h, 40))
		start += rnd_below(h, a->len / PAGE) * PAGE;
	last = area_last(&src->areas[m]);
	if (chance(h, 40))
		last = src->areas[m].iova +
		       (rnd_below(h, src->areas[m].len / PAGE) + 1) * PAGE - 1;
	if (last < start)
		last = area_last(a);
	/* Now and then a range that is not all mapped */
	if (chance(h, 8) && last + PAGE > last)
		last += PAGE;
	else if (chance(h, 5) && start >= PAGE)
		start -= PAGE;
	len = last - start + 1;

	/* iopt_get_pages(): contiguous areas from start to last */
	k = area_find(src, start);
	if (k < 0)
		want = ENOENT;
	for (cur = start; !want;) {
		a = &src->areas[k];
		el[nel].pages = a->pages;
		el[nel].poff = a->poff + (cur - a->iova);
		el[nel].len = (area_last(a) < last ? area_last(a) : last) -
			      cur + 1;
		nel++;
		if (area_last(a) >= last)
			break;
		if (k + 1 == src->nareas ||
		    src->areas[k + 1].iova != area_last(a) + 1) {
			want = ENOENT;
			break;
		}
		cur = area_last(a) + 1;
		k++;
	}

	if (fixed)
		diova = chance(h, 30) && di != si ? start :
			chance(h, 50) ? huge_block(h, di) : fixed_iova(h, len);
	if (!want && fixed) {
		if (diova + (len - 1) < diova)
			want = EOVERFLOW;
		else if (overlaps(dst, diova, diova + (len - 1)))
			want = EEXIST;
	} else if (!want) {
		a = &src->areas[area_find(src, start)];
		diova = predict_auto_iova(h, di,
					  (uintptr_t)area_va(h, a) +
					  (start - a->iova), len);
		if (diova == H_NO_IOVA)
			want = ENOSPC;
	}
	if (!want && dst->nareas + nel > H_AREAS)
		return false;	/* no room in the model */
	snprintf(h->op, sizeof(h->op),
		 "IOMMU_IOAS_COPY%s ioas[%d]=%u iova %#llx -> ioas[%d]=%u iova %#llx length %#llx",
		 fixed ? " FIXED_IOVA" : "", si, src->id, (ull)start, di,
		 dst->id, (ull)diova, (ull)len);
	h->n.copy++;
	got = fixed ? diova : 0;
	err = h_err(h_copy(h->iommufd, dst->id, &got, src->id, start, len,
			   fixed));
	h_expect_err(h, "IOMMU_IOAS_COPY", err, want);
	if (err)
		return true;
	if (got != diova)
		h_fail(h, "IOMMU_IOAS_COPY: expected IOVA %#llx, got %#llx",
		       (ull)diova, (ull)got);
	/* One area per source area, on the same pages objects */
	for (j = 0, cur = diova; j < nel; cur += el[j].len, j++)
		area_add(h, di, cur, el[j].len, el[j].pages, el[j].poff);
	for (j = 0, cur = diova; j < nel; cur += el[j].len, j++)
		check_walk_at(h, di, cur);
	return true;
}

/* HWPTs, attach */

static int hwpt_alloc(int iommufd, uint32_t dev_id, uint32_t pt_id,
		      uint32_t flags, uint32_t *out)
{
	struct iommu_hwpt_alloc cmd = {
		.size = sizeof(cmd),
		.flags = flags,
		.dev_id = dev_id,
		.pt_id = pt_id,
		.data_type = IOMMU_HWPT_DATA_NONE,
	};
	int rc = ioctl(iommufd, IOMMU_HWPT_ALLOC, &cmd);

	*out = cmd.out_hwpt_id;
	return rc;
}

/* A new object's id: non-zero and none of the live ones */
static void check_new_id(struct history *h, const char *what, uint32_t id)
{
	if (!id || id_live(h, id))
		h_fail(h, "%s: returned id %u, which is 0 or already in use",
		       what, id);
}

static bool op_hwpt(struct history *h)
{
	static const uint32_t bad_flags[] = {
		IOMMU_HWPT_ALLOC_NEST_PARENT, IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
		IOMMU_HWPT_FAULT_ID_VALID, 1U << 31,
	};
	int i = rnd_below(h, h->nioas), err;
	uint32_t flags = 0, id = 0;

	if (chance(h, 25) || h->nhwpts == H_HWPTS)
		flags = bad_flags[rnd_below(h, 4)];
	snprintf(h->op, sizeof(h->op),
		 "IOMMU_HWPT_ALLOC flags %#x dev_id %u pt_id ioas[%d]=%u", flags,
		 h->devid, i, h->ioas[i].id);
	h->n.hwpt_alloc++;
	err = h_err(hwpt_alloc(h->iommufd, h->devid, h->ioas[i].id, flags,
			       &id));
	/* SPEC 5.3: flags 0 makes a software table; any flag EOPNOTSUPP */
	h_expect_err(h, "IOMMU_HWPT_ALLOC", err, flags ? EOPNOTSUPP : 0);
	if (err)
		return true;
	check_new_id(h, "IOMMU_HWPT_ALLOC", id);
	h->hwpts[h->nhwpts++] = (struct hhwpt){ .id = id, .ioas = i };
	h->filled = true;
	return true;
}

static bool op_destroy(struct history *h)
{
	int v = rnd_below(h, 100), e, i, want, err;
	uint32_t id;

	if (v < 50 && h->nhwpts) {
		/* An explicit HWPT: EBUSY while the device is attached */
		e = rnd_below(h, h->nhwpts);
		id = h->hwpts[e].id;
		want = h->dev_state == DEV_HWPT && h->dev_pt == id ? EBUSY : 0;
		snprintf(h->op, sizeof(h->op),
			 "IOMMU_DESTROY explicit HWPT %u on ioas[%d]", id,
			 h->hwpts[e].ioas);
	} else if (v < 70 && h->dev_state == DEV_AUTO) {
		/* The automatic HWPT: the attached device holds it */
		id = h->dev_pt;
		want = EBUSY;
		snprintf(h->op, sizeof(h->op),
			 "IOMMU_DESTROY automatic HWPT %u (attached)", id);
	} else {
		/* An IOAS: EBUSY while any table is on it */
		i = rnd_below(h, h->nioas);
		id = h->ioas[i].id;
		want = ntables(h, i) ? EBUSY : 0;
		snprintf(h->op, sizeof(h->op), "IOMMU_DESTROY ioas[%d]=%u", i,
			 id);
		h->n.destroy++;
		err = h_err(iommufd_destroy(h->iommufd, id));
		h_expect_err(h, "IOMMU_DESTROY", err, want);
		if (err)
			return true;
		ioas_drop_all(h, i);
		/* Keep the number of IOASes: a new one in its place */
		h->ioas[i].id = 0;
		snprintf(h->op, sizeof(h->op), "IOMMU_IOAS_ALLOC for ioas[%d]",
			 i);
		err = h_err(ioas_alloc(h->iommufd, &id));
		h_expect_err(h, "IOMMU_IOAS_ALLOC", err, 0);
		check_new_id(h, "IOMMU_IOAS_ALLOC", id);
		h->ioas[i].id = id;
		return true;
	}
	h->n.destroy++;
	err = h_err(iommufd_destroy(h->iommufd, id));
	h_expect_err(h, "IOMMU_DESTROY", err, want);
	if (!err) {
		e = hwpt_find(h, id);
		h->hwpts[e] = h->hwpts[--h->nhwpts];
	}
	return true;
}

static bool op_attach(struct history *h)
{
	int v = rnd_below(h, 100), i = -1, e, err;
	uint32_t pt, want_pt;
	bool fresh = false;

	if (v < 60 || (!h->nhwpts && v < 85) ||
	    (v >= 85 && h->dev_state == DEV_DETACHED)) {
		/* An IOAS: its automatic table, new unless already on it */
		i = rnd_below(h, h->nioas);
		pt = h->ioas[i].id;
		fresh = !(h->dev_state == DEV_AUTO && h->dev_ioas == i);
		want_pt = fresh ? 0 : h->dev_pt;
		snprintf(h->op, sizeof(h->op),
			 "VFIO_DEVICE_ATTACH_IOMMUFD_PT ioas[%d]=%u", i, pt);
	} else if (v < 85) {
		e = rnd_below(h, h->nhwpts);
		pt = h->hwpts[e].id;
		want_pt = pt;
		snprintf(h->op, sizeof(h->op),
			 "VFIO_DEVICE_ATTACH_IOMMUFD_PT explicit HWPT %u on ioas[%d]",
			 pt, h->hwpts[e].ioas);
	} else {
		/* The HWPT it is attached to: nothing changes */
		pt = h->dev_pt;
		want_pt = pt;
		snprintf(h->op, sizeof(h->op),
			 "VFIO_DEVICE_ATTACH_IOMMUFD_PT its own HWPT %u", pt);
	}
	if (h->dev_state == DEV_DETACHED)
		h->n.attach++;
	else
		h->n.replace++;
	err = h_err(device_attach(h->devfd, &pt));
	h_expect_err(h, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", err, 0);
	if (fresh) {
		/* The old automatic table (if any) is gone: not live now */
		int old = h->dev_state;

		h->dev_state = DEV_DETACHED;
		check_new_id(h, "VFIO_DEVICE_ATTACH_IOMMUFD_PT", pt);
		h->dev_state = old;
	} else if (pt != want_pt) {
		h_fail(h, "VFIO_DEVICE_ATTACH_IOMMUFD_PT: expected pt_id %u, got %u",
		       want_pt, pt);
	}
	if (i >= 0) {
		h->dev_state = DEV_AUTO;
		h->dev_ioas = i;
	} else {
		h->dev_state = hwpt_find(h, pt) >= 0 ? DEV_HWPT : DEV_AUTO;
	}
	h->dev_pt = pt;
	h->filled = true;
	return true;
}

static bool op_detach(struct history *h)
{
	snprintf(h->op, sizeof(h->op), "VFIO_DEVICE_DETACH_IOMMUFD_PT (%s)",
		 h->dev_state == DEV_DETACHED ? "not attached" : "attached");
	h->n.detach++;
	h_expect_err(h, "VFIO_DEVICE_DETACH_IOMMUFD_PT",
		     h_err(device_detach(h->devfd)), 0);
	h->dev_state = DEV_DETACHED;
	return true;
}

/* Open the cdev and /dev/iommu, bind, 2 or 3 IOASes, maybe attach */
static void h_open(struct history *h)
{
	uint32_t id;
	int i;

	snprintf(h->op, sizeof(h->op),
		 "open %.180s, /dev/iommu, bind, IOAS_ALLOC", h->path);
	h->devfd = open(h->path, O_RDWR);
	h->iommufd = open("/dev/iommu", O_RDWR);
	if (h->devfd < 0 || h->iommufd < 0)
		h_fail(h, "open: %s", strerror(errno));
	h->dev_state = DEV_DETACHED;
	h->nhwpts = 0;
	h->devid = 0;
	h->nioas = 0;
	h_expect_err(h, "VFIO_DEVICE_BIND_IOMMUFD",
		     h_err(device_bind(h->devfd, h->iommufd, &id)), 0);
	check_new_id(h, "VFIO_DEVICE_BIND_IOMMUFD", id);
	h->devid = id;
	for (i = 0; i < 2 + (int)rnd_below(h, 2); i++) {
		h_expect_err(h, "IOMMU_IOAS_ALLOC",
			     h_err(ioas_alloc(h->iommufd, &id)), 0);
		check_new_id(h, "IOMMU_IOAS_ALLOC", id);
		h->ioas[i] = (struct hioas){ .id = id };
		h->nioas = i + 1;
	}
	if (edu_open(&h->edu, h->devfd))
		h_fail(h, "edu_open: the device does not answer");
	if (chance(h, 50))
		op_attach(h);
}

/* Close everything: nothing may stay pinned or allocated */
static void h_close(struct history *h)
{
	int i;

	edu_close(&h->edu);
	close(h->devfd);
	close(h->iommufd);
	h->dev_state = DEV_DETACHED;
	h->nhwpts = 0;
	for (i = 0; i < h->nioas; i++)
		ioas_drop_all(h, i);
	h->nioas = 0;
	check_counters(h);
	for (i = 0; i < H_BUFS; i++) {
		if (h->bufs[i].va && h->bufs[i].refs)
			h_fail(h, "model: buffer %d still referenced", i);
		if (h->bufs[i].va)
			buf_release(h, i);
	}
}

static bool op_reopen(struct history *h)
{
	snprintf(h->op, sizeof(h->op), "close the device and the iommufd");
	h->n.reopen++;
	h_close(h);
	h_open(h);
	h->filled = true;
	return true;
}

static bool (*const kind_ops[K_NR])(struct history *h) = {
	[K_MAP] = op_map, [K_UNMAP] = op_unmap, [K_COPY] = op_copy,
	[K_HWPT] = op_hwpt, [K_DESTROY] = op_destroy,
	[K_ATTACH] = op_attach, [K_DETACH] = op_detach,
	[K_REOPEN] = op_reopen,
};

/* HISTORY_OPS: "-a,-b" leaves kinds out, "a,b" runs only those */
static void parse_ops(struct history *h, const char *spec)
{
	char buf[256], *tok, *save = NULL;
	bool only = false;
	int k;

	for (k = 0; k < K_NR; k++)
		h->enabled[k] = true;
	if (!spec)
		return;
	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ", ", &save); tok;
	     tok = strtok_r(NULL, ", ", &save)) {
		bool off = *tok == '-';

		if (*tok == '-' || *tok == '+')
			tok++;
		for (k = 0; k < K_NR; k++)
			if (!strcmp(tok, kind_names[k]))
				break;
		if (k == K_NR)
			h_fail(h, "HISTORY_OPS: unknown op kind '%s'", tok);
		if (!off && !only) {
			only = true;
			memset(h->enabled, 0, sizeof(h->enabled));
		}
		h->enabled[k] = !off;
	}
}

static int pick_kind(struct history *h)
{
	unsigned int total = 0, r;
	int k;

	for (k = 0; k < K_NR; k++)
		total += h->enabled[k] ? kind_weights[k] : 0;
	if (!total)
		return -1;
	r = rnd_below(h, total);
	for (k = 0; k < K_NR; k++) {
		if (!h->enabled[k])
			continue;
		if (r < kind_weights[k])
			return k;
		r -= kind_weights[k];
	}
	return -1;
}

FIXTURE(history) {};
FIXTURE_SETUP(history) {}
FIXTURE_TEARDOWN(history) {}

TEST_F_TIMEOUT(history, random_history, 7 * 24 * 3600)
{
	static struct history hist;
	struct history *h = &hist;
	unsigned long step;
	struct timespec t0, t1;
	long long pins, iommu_pages;
	int p, kind, tries;
	double t;
	void *probe;

	h->md = _metadata;
	cdev_path(h->path, sizeof(h->path));
	if (!h->path[0])
		SKIP(return, "no device cdev for %s", bdf);
	h->seed = env_ul("HISTORY_SEED", (unsigned long)time(NULL));
	h->steps = env_ul("HISTORY_STEPS", 10000);
	h->check_table = env_ul("HISTORY_CHECK_TABLE", 1);
	h->trace = env_ul("HISTORY_TRACE", 0);
	h->rng = h->seed * 0x9e3779b97f4a7c15ULL + 1;
	h->thp = !access("/sys/kernel/mm/transparent_hugepage", F_OK);
	h->ops = getenv("HISTORY_OPS");
	parse_ops(h, h->ops);
	for (p = 0; p < H_PAGES; p++)
		h->pages[p].buf = -1;
	arena_init(h);
	/* Are huge pages there at all? */
	probe = alloc_buf(HUGE, true);
	h->huge_ok = probe;
	if (probe)
		munmap(probe, HUGE);

	fprintf(stderr, "# seed %llu\n", (ull)h->seed);
	fprintf(stderr,
		"# history: %lu steps (replay: HISTORY_SEED=%llu HISTORY_STEPS=%lu), ops:",
		h->steps, (ull)h->seed, h->steps);
	for (kind = 0; kind < K_NR; kind++)
		if (h->enabled[kind])
			fprintf(stderr, " %s", kind_names[kind]);
	fprintf(stderr, "; table check %s; huge pages %s; THP %s\n",
		h->check_table ? "on" : "off",
		h->huge_ok ? "available" : "NOT available", h->thp ? "y" : "n");

	/* Baselines with nothing of ours open */
	h->pins0 = pins_held();
	h->iommu0 = vmstat("nr_iommu_pages");
	h->vmpin0 = vm_pinned_kb();
	vm_counters(&pins, &iommu_pages);
	ASSERT_EQ(h->pins0, pins);
	ASSERT_EQ(h->iommu0, iommu_pages);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	h_open(h);
	check_all(h, true);

	for (step = 1; step <= h->steps; step++) {
		h->step = step;
		h->filled = false;
		h->call[0] = 0;
		/* An op that cannot run now (no room, nothing to copy) */
		t = now_s();
		for (tries = 0; tries < 8; tries++) {
			kind = pick_kind(h);
			if (kind < 0 || !kind_ops[kind] || kind_ops[kind](h))
				break;
		}
		h->n.t_ops += now_s() - t;
		h->n.steps++;
		check_all(h, h->filled || step % H_FULL_EVERY == 0);
		if (h->enabled[K_DMA] && step % H_DMA_EVERY == 0) {
			t = now_s();
			do_dma(h);
			h->n.t_dma += now_s() - t;
		}
		if (h->steps >= 100000 && step % (h->steps / 10) == 0) {
			clock_gettime(CLOCK_MONOTONIC, &t1);
			fprintf(stderr, "# history: step %lu of %lu, %ld s\n",
				step, h->steps, (long)(t1.tv_sec - t0.tv_sec));
		}
	}

	h->step = step;
	snprintf(h->op, sizeof(h->op), "final close");
	h_close(h);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	h_summary(h);
	fprintf(stderr,
		"# history: %ld s for %lu steps (ops with the walks of new mappings %.0f s, GET_PA checks %.0f s, pins and table counters %.0f s, edu DMA %.0f s)\n",
		(long)(t1.tv_sec - t0.tv_sec), h->n.steps, h->n.t_ops,
		h->n.t_get_pa, h->n.t_counters, h->n.t_dma);
	EXPECT_EQ(h->vmpin0, vm_pinned_kb());
	/* A history that never got a table proves little */
	EXPECT_LT(0, h->n.get_pa);
	EXPECT_LT(0, h->n.pins);
}

EDU_TEST_MAIN((void)0)
