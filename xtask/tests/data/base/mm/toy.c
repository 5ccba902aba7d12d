// SPDX-License-Identifier: GPL-2.0
/*
 * A toy change_pte_range(): enough C for the apply tests to patch.
 */

#include "toy.h"

static int toy_batch_hint(const struct toy_pte *pte)
{
	int old_name = pte->nr;

	return old_name > 1 ? old_name : 1;
}

long toy_change_range(struct toy_pte *pte, long nr, int prot)
{
	long pages = 0;
	long i;

	for (i = 0; i < nr; i++) {
		if (!pte[i].present)
			continue;
		pte[i].prot = prot;
		pages++;
	}
	return pages;
}

long toy_count_present(const struct toy_pte *pte, long nr)
{
	long n = 0;
	long i;

	for (i = 0; i < nr; i++)
		n += pte[i].present;
	return n;
}

int toy_hint(const struct toy_pte *pte)
{
	return toy_batch_hint(pte);
}
