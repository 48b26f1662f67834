//! [`TimeDimension`]: the ticks along the time dimension of a store as readers see it, in
//! GDAL's multidimensional view and in kerchunk references.

/// The ticks along a time dimension: every tick from the first step to the last of a
/// regular axis (a hole reads as the fill value), or the steps held of an irregular one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeDimension {
    /// `count` consecutive ticks from `first`: a regular axis (holes included), or tick 0
    /// of a store without time.
    Consecutive { first: u32, count: u64 },
    /// The steps held of an irregular axis, in time order.
    Listed(Vec<u32>),
}

impl TimeDimension {
    /// How many steps the dimension has.
    pub fn len(&self) -> u64 {
        match self {
            TimeDimension::Consecutive { count, .. } => *count,
            TimeDimension::Listed(ticks) => ticks.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tick of step `i`, if the dimension has one.
    pub fn tick(&self, i: u64) -> Option<u32> {
        match self {
            TimeDimension::Consecutive { first, count } if i < *count => {
                u32::try_from(u64::from(*first) + i).ok()
            }
            TimeDimension::Consecutive { .. } => None,
            TimeDimension::Listed(ticks) => {
                usize::try_from(i).ok().and_then(|i| ticks.get(i)).copied()
            }
        }
    }

    /// The step at tick `t`, if it is on the dimension.
    pub fn index_of(&self, t: u32) -> Option<u64> {
        match self {
            TimeDimension::Consecutive { first, count } => {
                let i = u64::from(t.checked_sub(*first)?);
                (i < *count).then_some(i)
            }
            TimeDimension::Listed(ticks) => ticks.binary_search(&t).ok().map(|i| i as u64),
        }
    }

    /// Every tick, in order.
    pub fn ticks(&self) -> Vec<u32> {
        (0..self.len()).map_while(|i| self.tick(i)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_map_to_ticks_within_the_dimension_only() {
        let regular = TimeDimension::Consecutive { first: 5, count: 3 };
        assert_eq!(regular.tick(0), Some(5));
        assert_eq!(regular.tick(2), Some(7));
        assert_eq!(regular.tick(3), None);
        assert_eq!(regular.tick(u64::MAX), None);
        assert_eq!(regular.ticks(), [5, 6, 7]);
        let at_the_end = TimeDimension::Consecutive {
            first: u32::MAX,
            count: 2,
        };
        assert_eq!(at_the_end.tick(1), None);
        assert_eq!(at_the_end.ticks(), [u32::MAX]);
        let listed = TimeDimension::Listed(vec![2, 9, 40]);
        assert_eq!(
            (listed.len(), listed.tick(2), listed.tick(3)),
            (3, Some(40), None)
        );
        assert_eq!(listed.ticks(), [2, 9, 40]);
    }

    #[test]
    fn ticks_map_back_to_their_steps_only() {
        let regular = TimeDimension::Consecutive { first: 5, count: 3 };
        let found: Vec<Option<u64>> = [4, 5, 7, 8].map(|t| regular.index_of(t)).into();
        assert_eq!(found, [None, Some(0), Some(2), None]);
        let listed = TimeDimension::Listed(vec![2, 9, 40]);
        let found: Vec<Option<u64>> = [2, 3, 40, 41].map(|t| listed.index_of(t)).into();
        assert_eq!(found, [Some(0), None, Some(2), None]);
        assert!(TimeDimension::Listed(Vec::new()).is_empty());
    }
}
