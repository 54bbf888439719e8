//! The queue's rules: order, overflow, room for a connection's own frames,
//! and how it ends.

use std::time::Duration;

use super::*;

fn frame(n: u8) -> Outbound {
    Outbound::Frame(Bytes::from(vec![n]))
}

fn byte(taken: Option<Taken>) -> u8 {
    match taken {
        Some(Taken::Item(Outbound::Frame(bytes))) => bytes[0],
        other => panic!("expected a frame, got {other:?}"),
    }
}

#[tokio::test]
async fn items_arrive_in_order_and_an_emptied_queue_holds_no_memory() {
    let (outbox, mut queue) = Outbox::new(8);
    for n in 0..5 {
        outbox.push(frame(n));
    }
    for n in 0..5 {
        assert_eq!(byte(Some(queue.recv().await)), n);
    }
    assert!(queue.try_recv().is_none());
    assert_eq!(queue.shared.lock().items.capacity(), 0);
}

#[tokio::test]
async fn a_push_past_capacity_overflows_before_what_is_queued() {
    let (outbox, mut queue) = Outbox::new(2);
    outbox.push(frame(1));
    outbox.push(frame(2));
    outbox.push(frame(3));
    assert!(matches!(queue.recv().await, Taken::Overflowed));
    assert!(matches!(queue.try_recv(), Some(Taken::Overflowed)));
}

#[tokio::test]
async fn a_run_is_queued_in_order_and_one_too_long_overflows() {
    let (outbox, mut queue) = Outbox::new(4);
    outbox.push(frame(0));
    outbox.push_all((1..4).map(frame));
    for n in 0..4 {
        assert_eq!(byte(Some(queue.recv().await)), n);
    }
    outbox.push_all((0..5).map(frame));
    assert!(matches!(queue.recv().await, Taken::Overflowed));
}

#[tokio::test]
async fn finished_comes_after_everything_queued_and_stays() {
    let (outbox, mut queue) = Outbox::new(1);
    outbox.push(frame(1));
    let sender = outbox.clone();
    let waiting = tokio::spawn(async move { sender.send(frame(2)).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    outbox.finish();
    assert_eq!(byte(Some(queue.recv().await)), 1);
    assert!(waiting.await.unwrap());
    assert_eq!(byte(Some(queue.recv().await)), 2);
    assert!(matches!(queue.recv().await, Taken::Finished));
    assert!(matches!(queue.try_recv(), Some(Taken::Finished)));
}

#[tokio::test]
async fn a_send_waits_for_room_and_then_goes_in_order() {
    let (outbox, mut queue) = Outbox::new(1);
    assert!(outbox.send(frame(1)).await);
    let sender = outbox.clone();
    let waiting = tokio::spawn(async move { sender.send(frame(2)).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished(), "a full queue makes a send wait");
    assert_eq!(byte(Some(queue.recv().await)), 1);
    assert!(waiting.await.unwrap());
    assert_eq!(byte(Some(queue.recv().await)), 2);
}

#[tokio::test]
async fn a_send_leaves_the_second_half_of_the_queue_to_pushes() {
    let (outbox, mut queue) = Outbox::new(4);
    assert!(outbox.send(frame(1)).await);
    outbox.push(frame(2));
    let sender = outbox.clone();
    let waiting = tokio::spawn(async move { sender.send(frame(5)).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        !waiting.is_finished(),
        "a half-full queue makes a send wait"
    );
    outbox.push(frame(3));
    outbox.push(frame(4));
    for n in 1..=4 {
        assert_eq!(byte(Some(queue.recv().await)), n, "no overflow");
    }
    assert!(waiting.await.unwrap());
    assert_eq!(byte(Some(queue.recv().await)), 5);
}

#[tokio::test]
async fn a_sender_that_gave_up_waiting_leaves_the_next_one_woken() {
    let (outbox, mut queue) = Outbox::new(1);
    assert!(outbox.send(frame(1)).await);
    let gave_up = tokio::time::timeout(Duration::from_millis(20), outbox.send(frame(2))).await;
    assert!(gave_up.is_err(), "a full queue makes a send wait");
    assert_eq!(queue.shared.lock().waiting, 0);
    let sender = outbox.clone();
    let waiting = tokio::spawn(async move { sender.send(frame(3)).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(byte(Some(queue.recv().await)), 1);
    assert!(waiting.await.unwrap());
    assert_eq!(byte(Some(queue.recv().await)), 3);
}

#[tokio::test]
async fn the_writer_sees_closed_once_every_sender_is_gone_and_drained() {
    let (outbox, mut queue) = Outbox::new(4);
    let other = outbox.clone();
    outbox.push(frame(7));
    drop(outbox);
    let waiting = tokio::spawn(async move {
        let first = byte(Some(queue.recv().await));
        (first, queue.recv().await)
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(other);
    let (first, then) = waiting.await.unwrap();
    assert_eq!(first, 7);
    assert!(matches!(then, Taken::Closed));
}

#[tokio::test]
async fn senders_give_up_once_the_writer_is_gone() {
    let (outbox, queue) = Outbox::new(1);
    assert!(outbox.send(frame(1)).await);
    let sender = outbox.clone();
    let waiting = tokio::spawn(async move { sender.send(frame(2)).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(queue);
    assert!(!waiting.await.unwrap());
    assert!(!outbox.send(frame(3)).await);
    outbox.push(frame(4));
}
