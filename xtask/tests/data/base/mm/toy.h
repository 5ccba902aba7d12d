/* SPDX-License-Identifier: GPL-2.0 */
#ifndef TOY_H
#define TOY_H

struct toy_pte {
	int present;
	int prot;
	int nr;
};

long toy_change_range(struct toy_pte *pte, long nr, int prot);
long toy_count_present(const struct toy_pte *pte, long nr);
int toy_hint(const struct toy_pte *pte);

#endif
